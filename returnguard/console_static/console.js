// ReturnGuard review console: keyboard shortcuts. No data is rendered here; pages come from the server.
"use strict";
document.addEventListener("keydown", function (event) {
  const target = event.target;
  if (event.ctrlKey || event.metaKey || event.altKey) return;
  if (target && (target.tagName === "TEXTAREA" || target.tagName === "INPUT" || target.tagName === "SELECT")) {
    if (event.key === "Escape") target.blur();
    return;
  }
  const button = document.querySelector('button[data-key="' + CSS.escape(event.key) + '"]');
  if (button) {
    event.preventDefault();
    button.click();
    return;
  }
  const rows = Array.from(document.querySelectorAll("table.queue tbody tr"));
  if (!rows.length) return;
  let index = rows.findIndex(function (row) { return row.classList.contains("selected"); });
  if (event.key === "j" || event.key === "k") {
    event.preventDefault();
    if (index >= 0) rows[index].classList.remove("selected");
    index = event.key === "j" ? Math.min(rows.length - 1, index + 1) : Math.max(0, index - 1);
    rows[index].classList.add("selected");
    rows[index].scrollIntoView({ block: "nearest" });
  } else if (event.key === "Enter" && index >= 0) {
    window.location.assign(rows[index].getAttribute("data-href"));
  }
});
