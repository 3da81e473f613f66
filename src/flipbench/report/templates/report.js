// The sample browser's filters: condition, valid or invalid, and a text search. Without this
// script (a viewer that blocks scripts) every row stays visible: it only hides rows.
(function () {
  "use strict";
  document.querySelectorAll("[data-browser]").forEach(function (browser) {
    var condition = browser.querySelector("[data-filter=condition]");
    var validity = browser.querySelector("[data-filter=valid]");
    var search = browser.querySelector("[data-filter=text]");
    var count = browser.querySelector("[data-count]");
    var rows = Array.prototype.slice.call(browser.querySelectorAll("tbody tr"));
    function apply() {
      var c = condition.value, v = validity.value, q = search.value.toLowerCase(), shown = 0;
      rows.forEach(function (row) {
        var ok = (c === "" || row.dataset.condition === c) &&
          (v === "" || row.dataset.valid === v) &&
          (q === "" || row.textContent.toLowerCase().indexOf(q) !== -1);
        row.hidden = !ok;
        if (ok) { shown += 1; }
      });
      count.textContent = shown + " of " + rows.length + " shown";
    }
    [condition, validity].forEach(function (el) { el.addEventListener("change", apply); });
    search.addEventListener("input", apply);
    apply();
  });
})();
