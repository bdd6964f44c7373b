// The live page: figures polled from /api/live, the picture from the MJPEG stream (polled frames
// when the stream is refused), recent defects, and the actions (with their keyboard shortcuts).
"use strict";
(function () {
  const root = document.querySelector(".console");
  if (!root) return;
  const fps = parseFloat(root.dataset.fps) || 5;
  const $ = (id) => document.getElementById(id);
  const text = (id, value) => { const el = $(id); if (el) el.textContent = value; };
  const fmt = (v, d) => (v === null || v === undefined) ? "–" : Number(v).toFixed(d === undefined ? 1 : d);
  const STAGES = ["capture", "queue", "preprocess", "infer", "postprocess", "total"];

  // The picture: MJPEG; if the stream is refused (too many viewers) or drops, poll single frames.
  const live = $("live");
  let polling = null;
  function pollFrames() {
    if (polling) return;
    polling = setInterval(() => { live.src = "/api/frame.jpg?t=" + Date.now(); }, 1000 / fps);
  }
  live.addEventListener("error", pollFrames);

  function verdict(el, figure) {
    if (!el || !figure) return;
    const ref = figure.reference;
    el.textContent = fmt(figure.value) + (ref ? "  (trained " + fmt(ref.mean) + " ± " + fmt(ref.std) + ") " + figure.verdict : "");
    el.className = figure.verdict === "in range" || !ref ? "" : "warn-text";
  }

  function render(s) {
    text("model-name", s.model.name);
    text("model-version", s.model.version);
    text("fps", fmt(s.fps));
    const c = s.counters;
    text("over-budget", c.over_budget + " of " + c.inspected);
    text("stale", c.stale + " / " + c.dropped);
    text("errors", String(c.errors));
    text("defect-rate", "defects " + c.defects + " of " + c.inspected +
      (c.inspected ? " (" + fmt(100 * c.defects / c.inspected) + " %)" : ""));
    text("drift", s.drift ? (s.drift.state || (s.drift.enabled === false ? "off" : "watching")) : "off");
    text("broker", (s.broker.connected ? "connected" : "DISCONNECTED") + ", outbox " + s.broker.outbox_depth);
    $("broker").className = s.broker.connected ? "" : "bad-text";
    text("camera", s.camera + " (" + s.mode + ")");
    text("budget", fmt(s.budget_ms, 0));
    text("viewers", String(s.viewers));
    const last = s.last;
    const rows = STAGES.map((stage) => {
      const p = (s.latency_ms || {})[stage] || {};
      const now = last ? last.latency_ms[stage] : null;
      const over = stage === "total" && p.p95 > s.budget_ms;
      return "<tr" + (over ? ' class="over"' : "") + "><td>" + stage + "</td><td>" + fmt(now) +
        "</td><td>" + fmt(p.p50) + "</td><td>" + fmt(p.p95) + "</td></tr>";
    });
    $("latency-rows").innerHTML = rows.join("");
    const setup = s.setup || {};
    if (setup.focus) {
      const f = setup.focus;
      $("focus-bar").style.width = Math.round(100 * (f.of_best || 0)) + "%";
      text("focus", fmt(f.value, 0) + " (peak " + fmt(f.best, 0) + ")");
    }
    verdict($("brightness"), setup.brightness);
    verdict($("contrast"), setup.contrast);
    if (setup.clipping) {
      const k = setup.clipping;
      const el = $("clipping");
      el.textContent = "dark " + fmt(100 * k.dark) + " %, bright " + fmt(100 * k.bright) + " %" + (k.warning ? "  CLIPPED" : "");
      el.className = k.warning ? "bad-text" : "";
    }
  }

  function renderDefects(list) {
    const box = $("defects");
    box.replaceChildren(...list.map((d) => {
      const a = document.createElement("a");
      a.href = "/defects/" + encodeURIComponent(d.id);
      a.className = "thumb";
      const img = document.createElement("img");
      img.src = d.thumb;
      img.alt = d.label;
      const cap = document.createElement("span");
      cap.textContent = d.label + " " + Number(d.score).toFixed(2) + " · " + new Date(d.ts).toLocaleTimeString();
      a.append(img, cap);
      return a;
    }));
    $("no-defects").hidden = list.length > 0;
  }

  async function tick() {
    try { render(await web.get("/api/live")); } catch (e) { text("defect-rate", "no answer: " + e.message); }
  }
  async function defects() {
    try { renderDefects((await web.get("/api/defects?limit=12")).defects); } catch (e) { /* next time */ }
  }
  tick(); defects();
  setInterval(tick, 500);
  setInterval(defects, 2000);

  // Actions, also on the keyboard (S, T, R, F) when no input has the focus.
  const paths = { snapshot: "/api/actions/snapshot", trigger: "/api/actions/trigger",
                  reload: "/api/actions/reload", "focus-reset": "/api/focus/reset" };
  async function act(name) {
    const out = $("action-result");
    out.textContent = name + "…";
    out.className = "";
    try {
      const reply = await web.post(paths[name]);
      const r = reply.result || {};
      out.textContent = name + ": done" + (r.id ? " (sample " + r.id + ")" : r.label ? " (" + r.label + " " + r.score + ")" : r.state ? " (" + r.state + ")" : "");
    } catch (e) {
      out.textContent = name + " failed: " + e.message;
      out.className = "bad-text";
    }
  }
  document.querySelectorAll("button[data-action]").forEach((b) => b.addEventListener("click", () => act(b.dataset.action)));
  const keys = { s: "snapshot", t: "trigger", r: "reload", f: "focus-reset" };
  document.addEventListener("keydown", (ev) => {
    if (ev.ctrlKey || ev.metaKey || ev.altKey || /INPUT|TEXTAREA|SELECT/.test(document.activeElement.tagName)) return;
    const name = keys[ev.key.toLowerCase()];
    const button = name && document.querySelector('button[data-action="' + name + '"]');
    if (button && !button.disabled) act(name);
  });
})();
