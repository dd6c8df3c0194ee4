// GaaS: the few behaviours htmx does not cover. No inline script anywhere (CSP script-src 'self').
(function () {
  "use strict";
  // After a form comes back with errors, move the keyboard focus to the error summary.
  function focusErrors(root) {
    var summary = (root || document).querySelector("#form-errors, #conflict");
    if (summary) { summary.setAttribute("tabindex", "-1"); summary.focus(); }
  }
  document.addEventListener("DOMContentLoaded", function () { focusErrors(document); });
  document.addEventListener("htmx:afterSwap", function (event) {
    if (event.detail && event.detail.target && event.detail.target.id === "flash") { focusErrors(event.detail.target); }
  });
})();
