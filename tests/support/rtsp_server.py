"""A GStreamer RTSP server for tests: ``/usr/bin/python3 tests/support/rtsp_server.py --port P``.

Runs with the system Python, which has ``gi`` and GstRtspServer (the venv has
neither). It serves a live test pattern, H.264 when x264enc is installed
(gstreamer1.0-plugins-ugly), Motion JPEG otherwise, on 127.0.0.1 only, and
prints ``READY`` once listening. SIGTERM or SIGINT stops it cleanly.
"""

from __future__ import annotations

import argparse
import signal
import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402

SOURCE = "videotestsrc is-live=true pattern=ball ! video/x-raw,width={w},height={h},framerate={fps}/1"
H264 = "x264enc tune=zerolatency speed-preset=ultrafast key-int-max={fps} ! rtph264pay name=pay0 pt=96"
MJPEG = "jpegenc quality=80 ! rtpjpegpay name=pay0 pt=26"


def launch_line(width: int, height: int, fps: int) -> str:
    encoder = H264 if Gst.ElementFactory.find("x264enc") else MJPEG
    return "( " + SOURCE.format(w=width, h=height, fps=fps) + " ! " + encoder.format(fps=fps) + " )"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--path", default="/test")
    parser.add_argument("--width", type=int, default=320)
    parser.add_argument("--height", type=int, default=240)
    parser.add_argument("--fps", type=int, default=15)
    args = parser.parse_args()

    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(str(args.port))
    factory = GstRtspServer.RTSPMediaFactory()
    factory.set_launch(launch_line(args.width, args.height, args.fps))
    factory.set_shared(True)
    server.get_mount_points().add_factory(args.path, factory)
    if server.attach(None) == 0:
        print(f"cannot listen on 127.0.0.1:{args.port}", file=sys.stderr)
        return 1

    loop = GLib.MainLoop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, signum, loop.quit)
    print("READY", flush=True)
    loop.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
