// The replay player. Steps come from BASE/api/episode/ID/steps in pages, each with the shapes to
// draw over its observation (demotrace.web.overlay); the raw observation comes from
// BASE/raw/ID/N and the shapes are drawn over it here, in an SVG laid over the image. BASE is the
// path the viewer is served under (<body data-base>).
"use strict";
(() => {
  const root = document.getElementById("player");
  const total = Number(root.dataset.steps);
  if (!total) return;
  const base = document.body.dataset.base || "";
  const episode = encodeURIComponent(root.dataset.episode);
  const pageSize = Number(root.dataset.page);
  const MAX_DELAY_S = 5;
  const PREFETCH = 20; // steps before the end of a page at which the next one is asked for
  const $ = (id) => document.getElementById(id);
  const obs = $("obs");
  const scrubber = $("scrubber");
  const playButton = $("play");
  const pages = new Map();
  let index = -1;
  let timer = null; // null: paused
  let playing = 0; // the current run of play; stop() starts a new one

  const overlay = $("overlay");
  const SVG = "http://www.w3.org/2000/svg";
  const PAD = 4; // inside a label's box (as overlay.PAD)
  const CAPTION_PAD = 8;
  const NO_FRAME = "no frame was recorded for this step";
  const rawUrl = (i) => `${base}/raw/${episode}/${i}`;

  function page(number) {
    if (!pages.has(number)) {
      const query = `offset=${number * pageSize}&limit=${pageSize}`;
      const url = `${base}/api/episode/${episode}/steps?${query}`;
      const request = fetch(url).then((r) => {
        if (!r.ok) throw new Error(`${url}: ${r.status}`);
        return r.json();
      }).then((body) => body.steps);
      request.catch(() => pages.delete(number));
      pages.set(number, request);
    }
    return pages.get(number);
  }

  async function stepAt(i) {
    const number = Math.floor(i / pageSize);
    return (await page(number))[i - number * pageSize];
  }

  function describe(step) {
    $("app").textContent = step.app || "";
    $("title").textContent = step.title || "";
    $("url").textContent = step.url || "";
    $("skills").textContent = (step.skills || []).join(", ");
    const started = $("started"); // not on the page when people are hidden
    if (started) started.textContent = step.t_start || "";
    $("time").textContent = typeof step.t === "number" ? `${step.t.toFixed(1)} s` : "";
    $("action").textContent = JSON.stringify(step.action, null, 2);
    $("action").dataset.step = String(step.step_index);
  }

  // --- drawing the step's shapes (demotrace.web.overlay, docs/viewer.md) ---------------------
  function svg(name, attrs, parent) {
    const node = document.createElementNS(SVG, name);
    for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, String(value));
    parent.appendChild(node);
    return node;
  }

  // Lines of white text on a dark box; place(width, height) says where the box goes.
  function boxed(lines, font, place, opacity) {
    const group = svg("g", {}, overlay);
    const back = svg("rect", { fill: "black", "fill-opacity": opacity }, group);
    const node = svg("text", { fill: "white", "font-size": font,
      "font-family": "DejaVu Sans, Verdana, sans-serif" }, group);
    lines.forEach((line, n) => {
      svg("tspan", { x: 0, dy: n ? "1.2em" : 0 }, node).textContent = line;
    });
    const b = node.getBBox();
    const [x, y, pad] = place(b.width, b.height);
    for (const [key, value] of [["x", x], ["y", y], ["width", b.width + 2 * pad],
      ["height", b.height + 2 * pad]]) back.setAttribute(key, String(value));
    node.setAttribute("transform", `translate(${x + pad - b.x} ${y + pad - b.y})`);
  }

  function caption(lines, o) {
    boxed(lines, o.font, (_w, h) => [CAPTION_PAD, o.h - h - 3 * CAPTION_PAD, CAPTION_PAD], 0.784);
  }

  function draw(o, missing) {
    overlay.replaceChildren();
    overlay.setAttribute("viewBox", `0 0 ${o.w} ${o.h}`);
    const stroke = (s) => ({ fill: "none", stroke: s.colour, "stroke-width": s.width });
    let captioned = false;
    for (const s of o.shapes) {
      if (s.kind === "box") {
        const [x0, y0, x1, y1] = s.box;
        svg("rect", { x: x0, y: y0, width: x1 - x0, height: y1 - y0, ...stroke(s) }, overlay);
      } else if (s.kind === "line") {
        svg("polyline", { points: s.points.join(" "), "stroke-opacity": s.opacity,
          "stroke-linejoin": "round", "stroke-linecap": "round", ...stroke(s) }, overlay);
      } else if (s.kind === "circle") {
        // Pillow draws an outline inside its radius; SVG centres the stroke on it
        svg("circle", { cx: s.at[0], cy: s.at[1], r: s.r - s.width / 2, ...stroke(s) }, overlay);
        if (s.dot) {
          svg("rect", { x: s.at[0], y: s.at[1], width: 1, height: 1, fill: s.colour }, overlay);
        }
      } else if (s.kind === "polygon") {
        svg("polygon", { points: s.points.join(" "), fill: s.colour }, overlay);
      } else if (s.kind === "label") {
        const [ax, ay] = s.at;
        boxed(s.text.split("\n"), o.font, (w, h) => [
          ax + s.gap + w + 2 * PAD < o.w ? ax + s.gap : ax - s.gap - w - 2 * PAD,
          ay + s.gap + h + 2 * PAD < o.h ? ay + s.gap : ay - s.gap - h - 2 * PAD,
          PAD,
        ], 0.745);
      } else if (s.kind === "caption") {
        caption(missing ? [...s.lines, NO_FRAME] : s.lines, o);
        captioned = true;
      }
    }
    if (missing && !captioned) caption([NO_FRAME], o);
  }

  // Resolves true once the image at `url` is shown, false when it cannot be loaded.
  function load(url) {
    return new Promise((resolve) => {
      obs.onload = () => resolve(true);
      obs.onerror = () => resolve(false);
      obs.src = url;
    });
  }

  function placeholder(o) {
    const grey = `<svg xmlns="${SVG}" width="${o.w}" height="${o.h}">` +
      `<rect width="100%" height="100%" fill="#3c3c3c"/></svg>`;
    return `data:image/svg+xml,${encodeURIComponent(grey)}`;
  }

  // Step i on screen: its observation loaded and its shapes drawn over it; then the image
  // says so (<img data-loaded=i>).
  async function show(i) {
    i = Math.max(0, Math.min(total - 1, i));
    if (i === index) return;
    index = i;
    delete obs.dataset.loaded;
    const loaded = load(rawUrl(i));
    scrubber.value = String(i);
    $("step-index").textContent = String(i);
    $("raw").href = rawUrl(i);
    $("drawn").href = `${base}/frame/${episode}/${i}.png`;
    history.replaceState(null, "", `?step=${i}`);
    let step = null;
    try {
      step = await stepAt(i);
    } catch (error) {
      $("action").textContent = `cannot load the step: ${error.message}`;
    }
    const ok = await loaded;
    if (index !== i) return;
    overlay.replaceChildren();
    if (step) {
      if (!ok && !(await load(placeholder(step.overlay)))) return;
      if (index !== i) return;
      describe(step);
      draw(step.overlay, !ok);
    }
    obs.dataset.loaded = String(i);
    if (i + 1 < total) new Image().src = rawUrl(i + 1);
    // the next page of steps, a while before it is needed (playing does not stall at its edge)
    const next = Math.floor(i / pageSize) + 1;
    if (next * pageSize < total && next * pageSize - i <= PREFETCH) page(next);
  }

  function stop() {
    clearTimeout(timer);
    playing += 1; // any tick of the run that stops finds itself outdated
    timer = null;
    playButton.textContent = "Play";
  }

  async function tick(run) {
    if (index + 1 >= total) { stop(); return; }
    const [now, next] = await Promise.all([stepAt(index), stepAt(index + 1)]);
    if (run !== playing) return;
    // t: seconds since the episode's start (there even when clock times are hidden)
    const delta = typeof now.t === "number" && typeof next.t === "number" ? next.t - now.t : NaN;
    const delay = Math.min(Math.max(Number.isFinite(delta) ? delta : 1, 0.05), MAX_DELAY_S);
    timer = setTimeout(async () => {
      await show(index + 1);
      if (run === playing) tick(run);
    }, delay * 1000);
  }

  function togglePlay() {
    if (timer !== null) { stop(); return; }
    if (index + 1 >= total) show(0);
    timer = 0; // playing, waiting for the next step's time
    playButton.textContent = "Pause";
    tick(playing);
  }

  const actions = {
    ArrowLeft: () => show(index - 1),
    ArrowRight: () => show(index + 1),
    Home: () => show(0),
    End: () => show(total - 1),
    " ": togglePlay,
  };
  document.addEventListener("keydown", (event) => {
    const action = actions[event.key];
    if (!action || event.altKey || event.ctrlKey || event.metaKey) return;
    // The focused scrubber moves itself with the arrows, Home and End (an "input" event).
    if (event.target === scrubber && event.key !== " ") return;
    event.preventDefault();
    if (event.key !== " ") stop();
    action();
  });
  scrubber.addEventListener("input", () => { stop(); show(Number(scrubber.value)); });
  for (const [id, action] of [["first", actions.Home], ["prev", actions.ArrowLeft],
    ["next", actions.ArrowRight], ["last", actions.End], ["play", togglePlay]]) {
    const button = $(id);
    button.addEventListener("click", () => {
      if (id !== "play") stop();
      action();
      button.blur(); // so that Space plays instead of pressing the button again
    });
  }
  show(Number(root.dataset.step));
})();
