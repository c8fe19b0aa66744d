// The replay player: steps come from BASE/api/episode/ID/steps in pages, frames from
// BASE/frame/ID/N.png, where BASE is the path the viewer is served under (<body data-base>).
"use strict";
(() => {
  const root = document.getElementById("player");
  const total = Number(root.dataset.steps);
  if (!total) return;
  const base = document.body.dataset.base || "";
  const episode = encodeURIComponent(root.dataset.episode);
  const pageSize = Number(root.dataset.page);
  const MAX_DELAY_S = 5;
  const $ = (id) => document.getElementById(id);
  const obs = $("obs");
  const scrubber = $("scrubber");
  const playButton = $("play");
  const pages = new Map();
  let index = -1;
  let timer = null; // null: paused
  let playing = 0; // the current run of play; stop() starts a new one

  const frameUrl = (i) => `${base}/frame/${episode}/${i}.png`;

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

  async function show(i) {
    i = Math.max(0, Math.min(total - 1, i));
    if (i === index) return;
    index = i;
    obs.src = frameUrl(i);
    scrubber.value = String(i);
    $("step-index").textContent = String(i);
    $("raw").href = `${base}/raw/${episode}/${i}`;
    history.replaceState(null, "", `?step=${i}`);
    try {
      const step = await stepAt(i);
      if (index === i && step) describe(step);
    } catch (error) {
      $("action").textContent = `cannot load the step: ${error.message}`;
    }
    if (i + 1 < total) new Image().src = frameUrl(i + 1);
  }

  obs.addEventListener("load", () => {
    obs.dataset.loaded = obs.src.match(/(\d+)\.png$/)[1];
  });

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
