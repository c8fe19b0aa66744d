// The custom colour combobox, two web components with secret fields in their shadow roots, and a
// check that a page cannot talk to the recorder's channel.
"use strict";
// Closed roots are out of reach of page scripts, so the test (which reads element boxes through
// the page) finds them here: testRoots[host id].
window.testRoots = {};
for (const [tag, mode, label, attrs] of [
  ["pin-box", "closed", "Account PIN", 'type="password"'],
  ["otp-box", "open", "Code", 'inputmode="numeric" autocomplete="one-time-code"'],
]) {
  customElements.define(tag, class extends HTMLElement {
    connectedCallback() {
      if (window.testRoots[this.id]) return;
      const root = this.attachShadow({ mode });
      root.innerHTML = `<style>label { display: block; margin: 0 0 2px; }
        input { font-size: 16px; width: 124px; padding: 4px; }</style>
        <label for="f">${label}</label><input id="f" ${attrs}>`;
      window.testRoots[this.id] = root;
    }
  });
}
const combo = document.getElementById("colour");
const list = document.getElementById("colours");
combo.addEventListener("click", () => {
  list.hidden = !list.hidden;
  combo.setAttribute("aria-expanded", String(!list.hidden));
});
for (const option of list.querySelectorAll("[role=option]")) {
  option.addEventListener("click", () => {
    combo.textContent = option.textContent;
    list.hidden = true;
    combo.setAttribute("aria-expanded", "false");
  });
}
document.getElementById("pay").addEventListener("click", () => {
  document.getElementById("out").textContent = "Thank you";
});
