// The console works without this script; it only adds conveniences.
"use strict";

document.addEventListener("DOMContentLoaded", () => {
  // Ask before a destructive action (disabling an account, applying a held plan).
  for (const button of document.querySelectorAll("button.danger")) {
    button.addEventListener("click", (event) => {
      if (!window.confirm(button.textContent.trim() + "?")) {
        event.preventDefault();
      }
    });
  }
  // A pasted class list: say how many rows it holds.
  const text = document.getElementById("text");
  const hint = document.getElementById("text-hint");
  if (text && hint) {
    const count = document.createElement("span");
    count.className = "row-count";
    count.setAttribute("aria-live", "polite");
    hint.after(count);
    const update = () => {
      const rows = text.value.split(/\r?\n/).filter((line) => line.trim() !== "").length;
      count.textContent = rows ? rows + " line" + (rows === 1 ? "" : "s") + " pasted (headings included)" : "";
    };
    text.addEventListener("input", update);
    update();
  }
});
