/* Every page: behaviour the templates would otherwise write inline, which the
   Content-Security-Policy refuses. */
(function () {
  "use strict";
  // The language menu switches as soon as a language is picked.
  var select = document.getElementById("language-select");
  if (select) {
    select.addEventListener("change", function () { select.form.submit(); });
  }
})();
