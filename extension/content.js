// demotrace content script: which element an action went to, and where secret fields are.
// It never reads what is typed: no key values, no input or textarea values (docs/browser.md).
"use strict";

(() => {
  if (window.top !== window || globalThis.__demotraceContent) return;
  globalThis.__demotraceContent = true;

  const MAX_NAME = 200;
  const MAX_TITLE = 1000;
  const MAX_URL = 4096;
  const MAX_ID = 200;
  const MAX_ATTR = 200;
  const MAX_SENSITIVE = 50; // boxes of visible secret fields in a page event
  const MAX_FIELDS = 1000; // secret fields and shadow roots looked at (visible or not)
  const MAX_COORD = 1000000;
  const KEY_BURST_MS = 1000; // keydowns into one element closer than this are one burst
  const WHEEL_BURST_MS = 500;
  const PAGE_THROTTLE_MS = 200;
  const SECRET_TOKENS = /(^|\s)(cc-[a-z-]+|one-time-code|current-password|new-password)(\s|$)/i;
  const SECRET_SELECTOR =
    'input[type="password" i], [autocomplete*="cc-" i], [autocomplete*="one-time-code" i], ' +
    '[autocomplete*="-password" i]';
  // Frames are looked into when they are of this page's origin; another origin's frame (a
  // payment provider's card field) cannot be, so it is secret as a whole.
  const FRAME_SELECTOR = "iframe, frame";
  const NO_TEXT = new Set(["script", "style", "noscript", "template", "select", "textarea",
    "input", "svg", "iframe", "object"]);
  const INPUT_ROLES = {
    button: "button", submit: "button", reset: "button", image: "button", checkbox: "checkbox",
    radio: "radio", range: "slider", number: "spinbutton", search: "searchbox", email: "textbox",
    tel: "textbox", text: "textbox", url: "textbox", password: "textbox",
  };
  const TAG_ROLES = {
    button: "button", textarea: "textbox", option: "option", h1: "heading", h2: "heading",
    h3: "heading", h4: "heading", h5: "heading", h6: "heading", nav: "navigation", main: "main",
    form: "form", table: "table", tr: "row", td: "cell", th: "columnheader", ul: "list",
    ol: "list", menu: "list", li: "listitem", dialog: "dialog", progress: "progressbar",
    meter: "meter", output: "status", fieldset: "group", details: "group", article: "article",
    aside: "complementary", hr: "separator", optgroup: "group", summary: "button",
  };

  // --- where the page is on the screen ----------------------------------------------------
  // Screen pixels (X11 root window). Pointer events give screenX/Y in DIPs (device-independent
  // pixels, not scaled by page zoom) and clientX/Y in CSS pixels (scaled by it); devicePixelRatio
  // is device pixels per CSS pixel. The service worker tells the page's zoom (tabs.getZoom), so
  // DIPs -> device pixels is devicePixelRatio / zoom.
  // The viewport's top-left in DIPs, screenX - clientX * zoom, is measured at each pointer event
  // and kept relative to window.screenX/Y and the browser's toolbars, so a moved window stays
  // right until the next pointer event measures again. Before any: window.screenX/Y plus the
  // toolbars (outer minus inner size).
  let zoom = 1;
  let measured = null; // [left - screenX, top - screenY, toolbarsWidth, toolbarsHeight], DIPs

  // Reading innerWidth/innerHeight can force a layout: read once, again after a resize.
  let bars = null;

  function toolbars() {
    if (bars === null) {
      bars = [window.outerWidth - window.innerWidth * zoom,
        window.outerHeight - window.innerHeight * zoom];
    }
    return bars;
  }

  function learn(e) {
    if (e.view && e.view !== window) return; // a frame's clientX/Y are not this viewport's
    const [tw, th] = toolbars();
    measured = [e.screenX - e.clientX * zoom - window.screenX,
      e.screenY - e.clientY * zoom - window.screenY, tw, th];
  }

  // {x, y}: the viewport's top-left in screen pixels; dpr: screen pixels per CSS pixel;
  // dsf: screen pixels per DIP.
  function geometry() {
    const dpr = window.devicePixelRatio || 1;
    const dsf = dpr / zoom;
    const [tw, th] = toolbars();
    let x;
    let y;
    if (measured) {
      x = window.screenX + measured[0] + (tw - measured[2]) / 2;
      y = window.screenY + measured[1] + (th - measured[3]);
    } else {
      x = window.screenX + tw / 2;
      y = window.screenY + th;
    }
    return { x: x * dsf, y: y * dsf, dpr, dsf };
  }

  function px(v) {
    const n = Math.round(v);
    return n > MAX_COORD ? MAX_COORD : n < -MAX_COORD ? -MAX_COORD : n;
  }

  function screenBox(r, g) {
    return [px(g.x + r.left * g.dpr), px(g.y + r.top * g.dpr), px(g.x + r.right * g.dpr),
      px(g.y + r.bottom * g.dpr)];
  }

  // --- describing an element ---------------------------------------------------------------
  function clip(s, n) {
    s = s.replace(/\s+/g, " ").trim();
    return s.length > n ? s.slice(0, n) : s;
  }

  function editable(el) {
    const tag = el.localName;
    return tag === "input" || tag === "textarea" || tag === "select" || el.isContentEditable;
  }

  // The text under `node`, skipping form controls, scripts and editable parts; at most `n`
  // characters are collected, so a click on a huge container stays cheap.
  function textOf(node, n) {
    const walker = node.ownerDocument.createTreeWalker(node, NodeFilter.SHOW_ELEMENT | NodeFilter.SHOW_TEXT, {
      acceptNode(x) {
        if (x.nodeType === Node.TEXT_NODE) return NodeFilter.FILTER_ACCEPT;
        return NO_TEXT.has(x.localName) || x.isContentEditable
          ? NodeFilter.FILTER_REJECT : NodeFilter.FILTER_SKIP;
      },
    });
    let out = "";
    while (out.length < n * 2 && walker.nextNode()) out += walker.currentNode.data + " ";
    return clip(out, n);
  }

  // The document inside a frame element, or null when it is of another origin.
  function frameDocument(el) {
    try {
      return el.contentDocument || null;
    } catch (_err) {
      return null;
    }
  }

  function isFrame(el) {
    return el.localName === "iframe" || el.localName === "frame";
  }

  // A field that was secret once stays secret while it is in the page: a "show password"
  // button turns a password field into a text field, and what is typed there is still the
  // password. (At most MAX_ONCE_SECRET of them; the ones taken out of the page are let go.)
  const MAX_ONCE_SECRET = 200;
  const onceSecret = new Set();

  function isSecret(el) {
    if (isFrame(el)) return frameDocument(el) === null;
    if (onceSecret.has(el)) return true;
    let secret;
    if (el.localName === "input" && (el.getAttribute("type") || "").toLowerCase() === "password") {
      secret = true;
    } else {
      const ac = el.getAttribute("autocomplete");
      secret = ac !== null && SECRET_TOKENS.test(ac);
    }
    if (secret && onceSecret.size < MAX_ONCE_SECRET) onceSecret.add(el);
    return secret;
  }

  function roleOf(el, tag) {
    const explicit = el.getAttribute("role");
    if (explicit && explicit.trim()) return clip(explicit.trim().split(/\s+/)[0], 64);
    if (tag === "input") {
      const type = el.type;
      if (el.hasAttribute("list") && INPUT_ROLES[type] === "textbox") return "combobox";
      return INPUT_ROLES[type] || null;
    }
    if (tag === "a" || tag === "area") return el.hasAttribute("href") ? "link" : null;
    if (tag === "select") return el.multiple || el.size > 1 ? "listbox" : "combobox";
    if (tag === "img") return el.getAttribute("alt") === "" ? "presentation" : "img";
    if (TAG_ROLES[tag]) return TAG_ROLES[tag];
    return el.isContentEditable ? "textbox" : null;
  }

  function nameOf(el, tag) {
    let s = el.getAttribute("aria-label");
    if (s && s.trim()) return clip(s, MAX_NAME);
    const ids = el.getAttribute("aria-labelledby");
    if (ids) {
      const scope = el.getRootNode();
      const byId = (id) => (scope.getElementById ? scope : document).getElementById(id);
      s = ids.trim().split(/\s+/).slice(0, 8).map(byId)
        .filter(Boolean).map((x) => textOf(x, MAX_NAME)).join(" ");
      if (s.trim()) return clip(s, MAX_NAME);
    }
    if (el.labels && el.labels.length) {
      s = Array.from(el.labels).slice(0, 4).map((x) => textOf(x, MAX_NAME)).join(" ");
      if (s.trim()) return clip(s, MAX_NAME);
    }
    if (tag === "img" || tag === "area" || (tag === "input" && el.type === "image")) {
      s = el.getAttribute("alt");
      if (s && s.trim()) return clip(s, MAX_NAME);
    }
    if (tag === "input" && (el.type === "submit" || el.type === "reset" || el.type === "button")) {
      // a button's value is its caption, written by the page, not typed by the person
      s = el.getAttribute("value");
      if (s && s.trim()) return clip(s, MAX_NAME);
      if (el.type !== "button") return el.type === "submit" ? "Submit" : "Reset";
    }
    for (const attr of ["title", "placeholder"]) {
      s = el.getAttribute(attr);
      if (s && s.trim()) return clip(s, MAX_NAME);
    }
    if (editable(el)) return null; // own text of an editable element is what was typed
    s = textOf(el, MAX_NAME);
    return s || null;
  }

  // What does not move with layout (tag, role, name, ...) is kept per element until the DOM
  // changes: the focus and keys events that follow a click on an element reuse it.
  let generation = 0;
  const cache = new WeakMap();

  function staticPart(el) {
    let c = cache.get(el);
    if (c !== undefined && c.generation === generation) return c;
    const tag = el.localName;
    const ac = el.getAttribute("autocomplete");
    c = {
      generation,
      tag: clip(tag, 64),
      role: roleOf(el, tag),
      name: nameOf(el, tag),
      id: el.id ? clip(el.id, MAX_ID) : null,
      type: tag === "input" ? clip(el.type, 32) : null,
      autocomplete: ac === null ? null : clip(ac, MAX_ATTR),
      secret: isSecret(el),
    };
    cache.set(el, c);
    return c;
  }

  // Boxes: measured at every pointer, focus and wheel event. A keys or change event reuses its
  // element's last box while nothing can have moved it (no DOM change, scroll, resize, zoom or
  // window move since), so typing does not force a layout.
  let layoutGeneration = 0;
  const boxes = new WeakMap();

  // Where a document of a frame of this page's origin (nested ones too) has its viewport's
  // top-left, in this page's CSS pixels; [0, 0] for the page itself, null when out of reach.
  function offsetOf(doc) {
    let x = 0;
    let y = 0;
    for (let depth = 0; doc !== document; depth++) {
      const frame = depth < MAX_DEPTH && doc.defaultView ? doc.defaultView.frameElement : null;
      if (!frame) return null;
      const r = frame.getBoundingClientRect();
      x += r.left + frame.clientLeft;
      y += r.top + frame.clientTop;
      doc = frame.ownerDocument;
    }
    return [x, y];
  }

  function boxOf(el, g, reuse) {
    const b = boxes.get(el);
    if (reuse && b !== undefined && b.generation === generation &&
      b.layoutGeneration === layoutGeneration && b.x === g.x && b.y === g.y && b.dpr === g.dpr) {
      return b.box;
    }
    let r = el.getBoundingClientRect();
    if (el.ownerDocument !== document) { // inside a frame: its rectangle is the frame's own
      const off = offsetOf(el.ownerDocument);
      if (!off) return null;
      r = { left: r.left + off[0], top: r.top + off[1], right: r.right + off[0],
        bottom: r.bottom + off[1] };
    }
    const box = screenBox(r, g);
    boxes.set(el, { generation, layoutGeneration, x: g.x, y: g.y, dpr: g.dpr, box });
    return box;
  }

  function describe(el, g, reuseBox) {
    const c = staticPart(el);
    return {
      tag: c.tag, role: c.role, name: c.name, id: c.id, type: c.type,
      autocomplete: c.autocomplete, bbox: boxOf(el, g, reuseBox === true), secret: c.secret,
    };
  }

  // --- shadow roots ------------------------------------------------------------------------
  // An event from inside a shadow root reaches this script with the path cut at a closed root's
  // host. chrome.dom.openOrClosedShadowRoot (content scripts only) opens closed roots too, so the
  // element acted on, and a password field a web component hides, are found all the same. That
  // call costs tens of µs (it is an extension API), so it is made only for custom elements (a
  // hyphen in the name), the hosts of closed roots in practice; open roots are read directly.
  const MAX_DEPTH = 16;
  const openRoot = chrome.dom && chrome.dom.openOrClosedShadowRoot;

  function shadowOf(el) {
    const open = el.shadowRoot;
    if (open) return open;
    if (!openRoot || !el.localName.includes("-")) return null;
    try {
      return openRoot(el) || null;
    } catch (_err) {
      return null;
    }
  }

  // A built-in element can host a closed root too (a div, a span: the tags attachShadow
  // accepts). Opening every one of them would cost too much on a walk, so it is done only when
  // the keyboard goes to such an element itself, which is where a closed root's field sends its
  // focus and keys from. A root found is kept; none found is asked again after a second.
  const HOST_TAGS = new Set(["article", "aside", "blockquote", "div", "footer", "h1", "h2", "h3",
    "h4", "h5", "h6", "header", "main", "nav", "p", "section", "span"]);
  const builtInRoots = new WeakMap();

  function builtInRoot(el) {
    if (!openRoot || !HOST_TAGS.has(el.localName) || el.getRootNode().activeElement !== el) {
      return null;
    }
    const now = performance.now();
    const known = builtInRoots.get(el);
    if (known && (known.root || now - known.at < ROOT_SCAN_MS)) return known.root;
    let root = null;
    try {
      root = openRoot(el) || null;
    } catch (_err) {
      root = null;
    }
    builtInRoots.set(el, { root, at: now });
    return root;
  }

  // The innermost element of `el` that the event went to: through shadow roots, the one with
  // the focus (keys, focus, change) or the one under the pointer (pointer, wheel).
  function inner(el, e, byPoint) {
    for (let depth = 0; depth < MAX_DEPTH; depth++) {
      const root = shadowOf(el) || (byPoint ? null : builtInRoot(el));
      if (!root) break;
      const next = byPoint ? root.elementFromPoint(e.clientX, e.clientY) : root.activeElement;
      if (!next || next === el) break;
      el = next;
    }
    return el;
  }

  // (nodeType, not instanceof Element: an element of a frame is of that frame's Element)
  function deepTarget(e, byPoint) {
    const path = e.composedPath();
    for (const x of path) if (x.nodeType === Node.ELEMENT_NODE) return inner(x, e, byPoint === true);
    return null;
  }

  // Shadow roots of the page (open and closed), found by walking the elements: again when the DOM
  // has changed since, at most every ROOT_SCAN_MS, and whenever the page is shown or loaded.
  // Each one found is observed like the document, so changes inside it count too.
  const ROOT_SCAN_MS = 1000;
  let roots = [];
  let rootsGeneration = -1;
  let rootsAt = -Infinity;

  // (and those in the documents of frames of this origin, which this script listens to too)
  function collectRoots(node, out, depth) {
    const walker = document.createTreeWalker(node, NodeFilter.SHOW_ELEMENT);
    while (walker.nextNode() && out.length < MAX_FIELDS) {
      const el = walker.currentNode;
      const root = shadowOf(el);
      if (root) {
        out.push(root);
        if (depth < MAX_DEPTH) collectRoots(root, out, depth + 1);
      } else if (depth < MAX_DEPTH && isFrame(el)) {
        const inner = frameDocument(el);
        if (inner && inner.documentElement) collectRoots(inner.documentElement, out, depth + 1);
      }
    }
  }

  function shadowRoots(force) {
    const now = performance.now();
    if (!force && (rootsGeneration === generation || now - rootsAt < ROOT_SCAN_MS)) return roots;
    rootsGeneration = generation;
    rootsAt = now;
    const found = [];
    if (document.documentElement) collectRoots(document.documentElement, found, 0);
    const known = new Set(roots);
    for (const root of found) if (!known.has(root)) watch(root);
    roots = found;
    return roots;
  }

  // --- sending -----------------------------------------------------------------------------
  // Events wait in `outbox` until the current task ends (the page's own handlers of the event
  // run first), then leave together in one message to the service worker.
  let port = null;
  let alive = true;
  let outbox = [];

  function connect() {
    port = chrome.runtime.connect({ name: "demotrace" });
    port.onDisconnect.addListener(() => { port = null; });
    port.onMessage.addListener((msg) => {
      if (msg && typeof msg.zoom === "number" && msg.zoom > 0) {
        zoom = msg.zoom;
        bars = null;
      }
    });
  }

  function flushOutbox() {
    if (!outbox.length) return;
    const batch = outbox;
    outbox = [];
    if (!alive) return;
    try {
      if (port === null) {
        connect();
      }
      port.postMessage(batch);
    } catch (_err) {
      // the extension was reloaded or removed: this page's copy of the script stops for good
      alive = false;
      port = null;
    }
  }

  function post(ev) {
    outbox.push(ev);
    if (outbox.length === 1) setTimeout(flushOutbox, 0);
  }

  function finish(ev, t0) {
    ev.handler_us = Math.max(0, Math.round((performance.now() - t0) * 1000));
    post(ev);
  }

  function stamp(e) {
    return performance.timeOrigin + e.timeStamp;
  }

  // --- element events ----------------------------------------------------------------------
  function onPointerDown(e) {
    if (!e.isTrusted) return;
    const t0 = performance.now();
    learn(e);
    const el = deepTarget(e, true);
    if (!el) return;
    const g = geometry();
    const ev = {
      type: "pointer", t: stamp(e), x: px(e.screenX * g.dsf), y: px(e.screenY * g.dsf),
      button: e.button >= 0 && e.button <= 4 ? e.button : 0, target: describe(el, g),
    };
    finish(ev, t0);
  }

  function onPointerOver(e) {
    if (e.isTrusted) learn(e);
  }

  function onFocusIn(e) {
    if (!e.isTrusted) return;
    const t0 = performance.now();
    const el = deepTarget(e);
    if (!el) return;
    const target = describe(el, geometry());
    finish({ type: "focus", t: stamp(e), target }, t0);
    // a secret field this page event may not know yet (one in a closed root of a div): its box
    // goes to the masks with the next page event
    if (target.secret) schedulePage(false);
  }

  let lastKey = null;
  let lastKeyT = -Infinity;

  function onKeyDown(e) {
    if (!e.isTrusted) return;
    const t0 = performance.now();
    const el = deepTarget(e);
    const first = el !== lastKey || e.timeStamp - lastKeyT > KEY_BURST_MS;
    lastKey = el;
    lastKeyT = e.timeStamp;
    if (!first || !el) return;
    finish({ type: "keys", t: stamp(e), target: describe(el, geometry(), true) }, t0);
  }

  let lastWheel = null;
  let lastWheelT = -Infinity;

  function onWheel(e) {
    if (!e.isTrusted) return;
    const t0 = performance.now();
    const el = deepTarget(e, true);
    const first = el !== lastWheel || e.timeStamp - lastWheelT > WHEEL_BURST_MS;
    lastWheel = el;
    lastWheelT = e.timeStamp;
    if (!first || !el) return;
    learn(e);
    const g = geometry();
    finish({
      type: "scroll", t: stamp(e), x: px(e.screenX * g.dsf), y: px(e.screenY * g.dsf),
      target: describe(el, g),
    }, t0);
  }

  function onChange(e) {
    if (!e.isTrusted) return;
    const t0 = performance.now();
    const el = deepTarget(e);
    if (!el) return;
    const tag = el.localName;
    if (tag !== "select" && tag !== "input" && tag !== "textarea") return;
    const target = describe(el, geometry(), true);
    const ev = { type: "change", t: stamp(e), target };
    if (tag === "select" && !target.secret) {
      const i = el.selectedIndex;
      const opt = i >= 0 ? el.options[i] : null;
      ev.option = opt
        ? { text: clip(opt.label || opt.text, MAX_NAME), value: opt.value.slice(0, MAX_TITLE),
          index: i }
        : null;
    }
    finish(ev, t0);
  }

  // --- page events: viewport and visible secret fields, throttled --------------------------
  let pageTimer = 0;
  let lastPageAt = -Infinity;
  let lastPage = "";
  let forceNext = true;

  function sensitiveBoxes(g, force) {
    const w = window.innerWidth;
    const h = window.innerHeight;
    const out = [];
    const add = (r, dx, dy) => {
      const left = r.left + dx;
      const top = r.top + dy;
      const right = r.right + dx;
      const bottom = r.bottom + dy;
      if (r.width <= 0 || r.height <= 0 || right <= 0 || bottom <= 0 || left >= w || top >= h) {
        return;
      }
      const c = { left: Math.max(0, left), top: Math.max(0, top),
        right: Math.min(w, right), bottom: Math.min(h, bottom) };
      out.push(screenBox(c, g));
    };
    // the secret fields: this page's and its shadow roots', those in frames of this origin,
    // and those that were secret once; a frame of another origin is secret as a whole
    const fields = new Set();
    const wholeFrames = [];
    const look = (scope, depth) => {
      for (const el of scope.querySelectorAll(SECRET_SELECTOR + ", " + FRAME_SELECTOR)) {
        if (fields.size + wholeFrames.length >= MAX_FIELDS) return;
        if (!isFrame(el)) {
          if (isSecret(el)) fields.add(el);
        } else if (isSecret(el)) {
          wholeFrames.push(el);
        } else if (depth < MAX_DEPTH) {
          look(frameDocument(el), depth + 1);
        }
      }
    };
    for (const scope of [document, ...shadowRoots(force)]) look(scope, 0);
    for (const el of onceSecret) {
      if (!el.isConnected) onceSecret.delete(el);
      else if (fields.size < MAX_FIELDS) fields.add(el);
    }
    for (const el of [...wholeFrames, ...fields]) {
      const off = el.ownerDocument === document ? [0, 0] : offsetOf(el.ownerDocument);
      if (off) add(el.getBoundingClientRect(), off[0], off[1]);
      if (out.length > MAX_SENSITIVE) break;
    }
    // more visible secret fields than a page event carries: the whole page is masked
    if (out.length > MAX_SENSITIVE) return [screenBox({ left: 0, top: 0, right: w, bottom: h }, g)];
    return out;
  }

  // The first call of each function compiles it: do that once when the page is idle rather than
  // inside the first click's handler.
  let warmed = false;

  function warmUp() {
    if (warmed || !document.body) return;
    warmed = true;
    const idle = window.requestIdleCallback || ((f) => setTimeout(f, 50));
    idle(() => {
      describe(document.body, geometry());
      cache.delete(document.body);
    });
  }

  function sendPage() {
    pageTimer = 0;
    warmUp();
    if (document.documentElement) hookFrames(document, 0);
    if (document.visibilityState !== "visible") return;
    const t0 = performance.now();
    lastPageAt = t0;
    const g = geometry();
    const ev = {
      type: "page", t: performance.timeOrigin + t0, url: location.href.slice(0, MAX_URL),
      title: document.title.slice(0, MAX_TITLE),
      viewport: screenBox({ left: 0, top: 0, right: window.innerWidth,
        bottom: window.innerHeight }, g),
      dpr: g.dpr, sensitive: document.documentElement ? sensitiveBoxes(g, forceNext) : [],
    };
    const key = JSON.stringify([ev.url, ev.title, ev.viewport, ev.dpr, ev.sensitive]);
    if (key === lastPage && !forceNext) return;
    lastPage = key;
    forceNext = false;
    finish(ev, t0);
  }

  // At most one page event per PAGE_THROTTLE_MS, measured just after a paint (a frame, then a
  // task), when the layout is fresh: no layout is forced in the middle of the page's own work.
  function schedulePage(force) {
    if (force) forceNext = true;
    if (pageTimer) return;
    const wait = Math.max(0, lastPageAt + PAGE_THROTTLE_MS - performance.now());
    pageTimer = setTimeout(() => requestAnimationFrame(() => setTimeout(sendPage, 0)), wait);
  }

  // Something scrolled or resized: boxes measured before may be stale.
  function moved() {
    layoutGeneration += 1;
    schedulePage(false);
  }

  // Chromium on X11 does not always tell the service worker (windows.onFocusChanged) that
  // another application took the focus; the page's own blur and focus make it look again.
  function onWindowFocus(e) {
    if (!e.isTrusted || e.target !== window) return;
    post({ type: "_focus" });
    if (e.type === "blur") setTimeout(focusInFrame, 0);
  }

  // The keyboard went into a frame (this page's blur, with a frame as its active element). A
  // frame of this origin whose events are heard (below) says itself where the focus went; for
  // another, say which element has the focus: the frame itself (secret when it is of another
  // origin), or the field inside a frame of this origin.
  function focusInFrame() {
    const frame = document.activeElement;
    if (!frame || !isFrame(frame)) return;
    const t0 = performance.now();
    const inner = frameDocument(frame);
    if (inner && hooked.has(inner)) return;
    const field = inner && inner.activeElement;
    let target = describe(frame, geometry());
    if (field && field !== inner.body && isSecret(field)) target = { ...target, secret: true };
    finish({ type: "focus", t: performance.timeOrigin + t0, target }, t0);
  }

  const opts = { capture: true, passive: true };

  // Frames of this page's origin (and theirs, nested): the content script runs in the top
  // frame only, so their documents' events are listened to from here, by the same handlers
  // (their boxes are offset by the frame's place in the page). A frame's documents are looked
  // for at each page event and when the frame loads (a new document).
  const hooked = new WeakSet();

  // The element events of a window: the page's own, or a frame's (of the same origin).
  function listen(win) {
    win.addEventListener("pointerdown", onPointerDown, opts);
    win.addEventListener("focusin", onFocusIn, opts);
    win.addEventListener("keydown", onKeyDown, opts);
    win.addEventListener("wheel", onWheel, opts);
    win.addEventListener("change", onChange, opts);
    win.addEventListener("scroll", moved, opts);
  }
  const framesSeen = new WeakSet();

  function hookFrames(doc, depth) {
    for (const frame of doc.querySelectorAll(FRAME_SELECTOR)) {
      if (!framesSeen.has(frame)) {
        framesSeen.add(frame);
        frame.addEventListener("load", () => {
          hookFrames(document, 0); // its new document is heard from now, not the next page event
          schedulePage(true);
        }, opts);
      }
      const inner = frameDocument(frame);
      const win = inner && inner.defaultView;
      if (!win) continue;
      if (!hooked.has(inner) && inner.documentElement) {
        hooked.add(inner);
        listen(win);
        watch(inner.documentElement);
      }
      if (depth < MAX_DEPTH) hookFrames(inner, depth + 1);
    }
  }

  try {
    connect(); // at once, so that the service worker tells the zoom before the first event
  } catch (_err) {
    alive = false;
  }
  window.addEventListener("pagehide", flushOutbox, opts);
  window.addEventListener("blur", onWindowFocus, opts);
  window.addEventListener("focus", onWindowFocus, opts);
  listen(window);
  window.addEventListener("pointerover", onPointerOver, opts);
  window.addEventListener("resize", () => {
    bars = null;
    moved();
  }, opts);
  window.addEventListener("pageshow", () => schedulePage(true), opts);
  document.addEventListener("visibilitychange", () => schedulePage(true), opts);
  document.addEventListener("DOMContentLoaded", () => schedulePage(true), opts);
  window.addEventListener("load", () => schedulePage(true), opts);

  const observer = new MutationObserver(() => {
    generation += 1;
    schedulePage(false);
  });
  function watch(node) {
    observer.observe(node, {
      childList: true, subtree: true, characterData: true, attributes: true,
      attributeFilter: ["type", "autocomplete", "style", "class", "hidden", "id", "role",
        "aria-label", "aria-labelledby", "title", "placeholder", "alt", "value", "for",
        "multiple", "size", "href", "contenteditable"],
    });
  }
  if (document.documentElement) watch(document.documentElement);
  else {
    document.addEventListener("readystatechange", () => watch(document.documentElement),
      { once: true });
  }
})();
