// The pairing page: `demotrace browser pair` prints chrome-extension://ID/pair.html#port=P&token=T.
// Opening it stores the port and token for the service worker, then takes them out of the address
// bar and says whether the recorder answers.
"use strict";

const TOKEN = /^[A-Za-z0-9_-]{16,128}$/;

function say(state, detail, bad) {
  const el = document.getElementById("state");
  el.textContent = state;
  el.className = bad ? "bad" : "";
  document.getElementById("detail").textContent = detail;
}

async function check(port, token) {
  try {
    const r = await fetch(`http://127.0.0.1:${port}/v1/hello`, {
      headers: { Authorization: `Bearer ${token}` }, cache: "no-store", credentials: "omit",
    });
    if (r.ok) {
      const body = await r.json();
      return `The recorder answers (${String(body.state)}).`;
    }
    return `The recorder answered ${r.status}: run \`demotrace browser pair\` again and open ` +
      "its new link.";
  } catch (_err) {
    return "The recorder is not running now; the extension connects when it records.";
  }
}

async function pair() {
  const params = new URLSearchParams(location.hash.slice(1));
  const port = Number(params.get("port"));
  const token = params.get("token") || "";
  if (!location.hash) {
    const got = await chrome.storage.local.get(["port"]);
    if (Number.isInteger(got.port)) {
      document.title = "demotrace: paired";
      say("paired", `With the recorder on port ${got.port}.`, false);
    } else {
      say("not paired", "Open the link `demotrace browser pair` prints.", true);
    }
    return;
  }
  if (!Number.isInteger(port) || port < 1 || port > 65535 || !TOKEN.test(token)) {
    document.title = "demotrace: pairing failed";
    say("not paired", "This link is damaged: copy the whole link `demotrace browser pair` " +
      "prints.", true);
    return;
  }
  await chrome.storage.local.set({ port, token });
  history.replaceState(null, "", location.pathname);
  document.title = "demotrace: paired";
  say("paired", `With the recorder on port ${port}. ${await check(port, token)}`, false);
}

pair().catch((err) => say("not paired", String(err), true));
