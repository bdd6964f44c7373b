// The review page: one sample at a time, keyboard first, the next images preloaded.
// Talks only to the JSON API (web.post adds the CSRF token); nothing here is trusted by the server.
"use strict";
(function () {
  const boot = JSON.parse(document.getElementById("boot").textContent);
  const $ = (id) => document.getElementById(id);
  const filters = boot.queue.filters;
  const state = {
    queue: boot.queue.items, next: boot.queue.next, remaining: boot.queue.remaining,
    capped: boot.queue.remaining_capped,
    pos: 0, done: 0, stamps: [], undo: [], details: new Map(), images: new Map(), current: null,
    busy: false, zoom: 1, fetching: null,
  };

  const imageUrl = (id) => "/api/samples/" + encodeURIComponent(id) + "/image";
  function detail(id) {
    if (!state.details.has(id)) {
      const p = web.get("/api/samples/" + encodeURIComponent(id));
      p.catch(() => state.details.delete(id));
      state.details.set(id, p);
    }
    return state.details.get(id);
  }
  function preload() {
    for (let i = state.pos; i < Math.min(state.queue.length, state.pos + 1 + boot.preload); i++) {
      const id = state.queue[i].id;
      detail(id);
      if (!state.images.has(id)) {
        const img = new Image();
        img.decoding = "async";
        img.src = imageUrl(id);
        state.images.set(id, img);
      }
    }
    if (state.queue.length - state.pos <= boot.preload + 1) more();
  }
  function more() {
    if (!state.next || state.fetching) return;
    const params = new URLSearchParams({ ...filters, state: "unreviewed", order: "uncertainty", after: state.next });
    const doneAtRequest = state.done;  // votes cast while the page is in flight are not in its count
    state.fetching = web.get("/api/samples?" + params).then((page) => {
      const seen = new Set(state.queue.map((it) => it.id));
      state.queue.push(...page.items.filter((it) => !seen.has(it.id)));
      state.next = page.next;
      state.remaining = page.remaining - (state.done - doneAtRequest);
      state.capped = page.remaining_capped;
      if (!state.current) show(); else counter();
    }).catch((e) => error(e.message)).finally(() => { state.fetching = null; });
  }

  function error(text) { $("error").textContent = text || ""; }
  function counter() {
    const now = Date.now();
    state.stamps = state.stamps.filter((t) => now - t < 300000);
    const span = state.stamps.length ? Math.max(now - state.stamps[0], 60000) : 60000;
    const rate = (state.stamps.length / (span / 60000)).toFixed(1);
    $("counter").textContent = state.done + " labeled this session · " + rate + " per minute · " +
      Math.max(state.remaining ?? 0, 0) + (state.capped ? "+" : "") + " left";
  }

  function clear(node) { while (node.firstChild) node.removeChild(node.firstChild); }
  function el(tag, text, cls) {
    const node = document.createElement(tag);
    if (text !== undefined) node.textContent = text;
    if (cls) node.className = cls;
    return node;
  }

  async function show() {
    error("");
    if (state.pos >= state.queue.length && state.next) { state.current = null; more(); return; }
    if (state.pos >= state.queue.length) state.pos = 0;  // skipped samples come round again at the end
    const item = state.queue[state.pos];
    state.current = item || null;
    $("review").dataset.sample = "…";
    $("empty").hidden = !!item;
    $("review").classList.toggle("is-empty", !item);
    if (!item) {
      state.remaining = 0;  // skipped samples come round again, so an empty queue means nothing is left
      state.capped = false;
      $("image").removeAttribute("src"); $("review").dataset.sample = ""; counter(); return;
    }
    $("missing").hidden = true;
    $("image").hidden = false;
    $("image").src = imageUrl(item.id);
    setZoom(1);
    preload();
    counter();
    let d;
    try { d = await detail(item.id); } catch (e) { error(e.message); return; }
    if (state.current !== item) return;
    render(item, d);
  }

  function render(item, d) {
    $("predicted").textContent = d.predicted + " · " + d.score.toFixed(3);
    const flags = $("flags");
    clear(flags);
    if (d.flagged) flags.appendChild(el("span", "flagged: " + d.reasons.join(", "), "badge warn"));
    if (d.missing) flags.appendChild(el("span", "image missing", "badge bad"));
    const scores = Object.entries(d.meta.scores || {}).sort((a, b) => b[1] - a[1]).slice(0, 5);
    clear($("scores"));
    for (const [label, score] of scores) {
      const li = el("li");
      li.appendChild(el("span", label, "score-label"));
      const bar = el("span", "", "bar");
      bar.style.width = Math.round(score * 100) + "%";
      li.appendChild(bar);
      li.appendChild(el("span", score.toFixed(3), "score-value"));
      $("scores").appendChild(li);
    }
    clear($("labels"));
    d.labels.forEach((label, i) => {
      const b = el("button", "", "label" + (label === d.predicted ? " is-predicted" : ""));
      b.type = "button";
      if (i < 9) b.appendChild(el("kbd", String(i + 1)));
      b.appendChild(document.createTextNode(" " + label));
      b.dataset.label = label;
      b.addEventListener("click", () => vote(label));
      $("labels").appendChild(b);
    });
    const facts = $("facts");
    clear(facts);
    const when = new Date(d.ts).toISOString().replace("T", " ").slice(0, 19) + " UTC";
    for (const [k, v] of [["Device", d.device], ["Line", d.site + " / " + d.line], ["Time", when],
                          ["Model", d.model + " " + d.version], ["Why sampled", d.reasons.join(", ")],
                          ["Sample", d.id]]) {
      facts.appendChild(el("dt", k));
      const dd = el("dd");
      if (k === "Sample") { const a = el("a", v); a.href = "/samples/" + encodeURIComponent(v); dd.appendChild(a); }
      else dd.textContent = v;
      facts.appendChild(dd);
    }
    drawBoxes(d.meta.detections || [], d.meta.image || { width: 1, height: 1 });
    $("review").dataset.sample = d.id;  // ready for a decision (tests wait on it)
  }

  function drawBoxes(detections, size) {
    // Boxes are normalized to the frame; the SVG has the image's own size as its viewBox.
    const svg = $("boxes"), w = size.width, h = size.height;
    svg.setAttribute("viewBox", "0 0 " + w + " " + h);
    clear(svg);
    for (const det of detections) {
      const [x1, y1, x2, y2] = [det.box[0] * w, det.box[1] * h, det.box[2] * w, det.box[3] * h];
      const r = document.createElementNS("http://www.w3.org/2000/svg", "rect");
      r.setAttribute("x", x1); r.setAttribute("y", y1);
      r.setAttribute("width", Math.max(x2 - x1, 0)); r.setAttribute("height", Math.max(y2 - y1, 0));
      const t = document.createElementNS("http://www.w3.org/2000/svg", "title");
      t.textContent = det.label + " " + det.score;
      r.appendChild(t);
      svg.appendChild(r);
    }
  }

  async function send(url, body) {
    if (state.busy || !state.current) return null;
    state.busy = true;
    try { return await web.post(url, body); }
    catch (e) {
      error(e.message);
      if (e.status === 409 || e.status === 404) advance(true);  // decided meanwhile, or gone: move on
      return null;
    } finally { state.busy = false; }
  }
  async function vote(label) {
    const item = state.current;
    if (!item) return;
    const body = label === null ? { unsure: true } : { label };
    const res = await send("/api/samples/" + encodeURIComponent(item.id) + "/votes", body);
    if (!res) return;
    state.undo.push(item);
    state.done += 1;
    state.stamps.push(Date.now());
    state.remaining = (state.remaining ?? 1) - 1;
    advance(true);
  }
  function advance(removeCurrent) {
    if (removeCurrent) state.queue.splice(state.pos, 1);
    else if (state.pos < state.queue.length) state.pos += 1;
    show();
  }
  function back() { if (state.pos > 0) { state.pos -= 1; show(); } }
  async function undo() {
    const item = state.undo.pop();
    if (!item || state.busy) return;
    state.busy = true;
    try {
      await web.post("/api/samples/" + encodeURIComponent(item.id) + "/votes/undo");
      state.details.delete(item.id);
      state.queue.splice(state.pos, 0, item);
      state.done -= 1;
      state.stamps.pop();
      state.remaining = (state.remaining ?? 0) + 1;
      show();
    } catch (e) { error("Undo: " + e.message); }
    finally { state.busy = false; }
  }

  function setZoom(level, originX, originY) {
    state.zoom = Math.min(Math.max(level, 1), 8);
    const z = $("zoomer");
    if (originX !== undefined) z.style.transformOrigin = originX + "% " + originY + "%";
    else if (state.zoom === 1) z.style.transformOrigin = "50% 50%";
    z.style.transform = "scale(" + state.zoom + ")";
    $("zoom-level").textContent = Math.round(state.zoom * 100) + "%";
  }
  $("zoomer").addEventListener("click", (ev) => {
    const r = $("zoomer").getBoundingClientRect();
    const x = ((ev.clientX - r.left) / r.width) * 100, y = ((ev.clientY - r.top) / r.height) * 100;
    setZoom(state.zoom >= 4 ? 1 : state.zoom * 2, x, y);
  });
  $("zoom-in").addEventListener("click", () => setZoom(state.zoom * 2));
  $("zoom-out").addEventListener("click", () => setZoom(state.zoom / 2));
  $("image").addEventListener("error", () => {
    if (!$("image").getAttribute("src")) return;
    $("image").hidden = true;
    $("missing").hidden = false;
  });
  $("accept").addEventListener("click", () => { if (state.current) vote(state.current.predicted); });
  $("unsure").addEventListener("click", () => vote(null));
  $("skip").addEventListener("click", () => advance(false));
  $("undo").addEventListener("click", undo);

  document.addEventListener("keydown", (ev) => {
    if (ev.ctrlKey || ev.metaKey || ev.altKey) return;
    const tag = (ev.target.tagName || "").toLowerCase();
    if (tag === "input" || tag === "select" || tag === "textarea") return;
    if (tag === "button" && ev.key === "Enter" && ev.target.closest(".actions, .labels, .zoombar")) return;
    const k = ev.key;
    let handled = true;
    if (k >= "1" && k <= "9") {
      const b = document.querySelectorAll("#labels button")[Number(k) - 1];
      if (b) vote(b.dataset.label);
    } else if (k === "Enter") { if (state.current) vote(state.current.predicted); }
    else if (k === "s") advance(false);
    else if (k === "u") vote(null);
    else if (k === "z") undo();
    else if (k === "ArrowRight") advance(false);
    else if (k === "ArrowLeft") back();
    else if (k === "+" || k === "=") setZoom(state.zoom * 2);
    else if (k === "-") setZoom(state.zoom / 2);
    else if (k === "0") setZoom(1);
    else handled = false;
    if (handled) ev.preventDefault();
  });

  setInterval(counter, 5000);
  show();
  $("main").focus({ preventScroll: true });
})();
