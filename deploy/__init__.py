"""Deploy tooling that runs on an operator's machine (flash-model, rollback) or is copied to a device.

Not part of the installed ``agent`` package: these modules run from a checkout.
"""
