// syncbridge admin UI: optional niceties only; every page works without this file.
"use strict";

document.addEventListener("DOMContentLoaded", function () {
  // "Select all" checkbox at the top of each DLQ group.
  document.querySelectorAll("input[data-select-all]").forEach(function (box) {
    box.addEventListener("change", function () {
      var table = box.closest("table");
      table.querySelectorAll("input[name=job_id]").forEach(function (item) {
        item.checked = box.checked;
      });
    });
  });

  // Auto-refresh, remembered per browser.
  document.querySelectorAll("input[data-autorefresh]").forEach(function (box) {
    var key = "syncbridge.autorefresh";
    var seconds = parseInt(box.getAttribute("data-autorefresh"), 10) || 10;
    var timer = null;
    function apply() {
      if (timer) { clearTimeout(timer); timer = null; }
      if (box.checked) { timer = setTimeout(function () { location.reload(); }, seconds * 1000); }
    }
    box.checked = window.localStorage.getItem(key) === "on";
    box.addEventListener("change", function () {
      window.localStorage.setItem(key, box.checked ? "on" : "off");
      apply();
    });
    apply();
  });
});
