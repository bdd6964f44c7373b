// Shared by every page: the CSRF token for fetch() calls, and JSON helpers that report errors.
"use strict";
window.web = (function () {
  const meta = document.querySelector('meta[name="csrf-token"]');
  const csrf = meta ? meta.content : "";
  async function call(method, url, body) {
    const options = { method, headers: { "Accept": "application/json" }, credentials: "same-origin" };
    if (method !== "GET") options.headers["X-CSRF-Token"] = csrf;
    if (body !== undefined) {
      options.headers["Content-Type"] = "application/json";
      options.body = JSON.stringify(body);
    }
    const response = await fetch(url, options);
    let data = null;
    try { data = await response.json(); } catch (e) { data = null; }
    if (!response.ok) {
      const error = new Error((data && data.error) || ("HTTP " + response.status));
      error.status = response.status;
      throw error;
    }
    return data;
  }
  return {
    csrf,
    get: (url) => call("GET", url),
    post: (url, body) => call("POST", url, body === undefined ? {} : body),
  };
})();
