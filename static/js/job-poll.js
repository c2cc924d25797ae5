/* Live progress of background jobs (imports, exports, model runs).

   An element with data-poll-url is polled every second for a small JSON state;
   each [data-poll-field=name] inside it shows state[name] and a
   [data-poll-progress] <progress> shows state.progress. Once state.done, the
   page reloads so the server renders the finished job (its error report, its
   download link). No inline script: the Content-Security-Policy forbids it. */
(function () {
  "use strict";
  var INTERVAL_MS = 1000;

  function poll(element) {
    var url = element.getAttribute("data-poll-url");
    function tick() {
      fetch(url, { headers: { Accept: "application/json" }, credentials: "same-origin" })
        .then(function (response) {
          if (!response.ok) { throw new Error("HTTP " + response.status); }
          return response.json();
        })
        .then(function (state) {
          element.querySelectorAll("[data-poll-field]").forEach(function (node) {
            var value = state[node.getAttribute("data-poll-field")];
            if (value !== undefined && value !== null) { node.textContent = String(value); }
          });
          var bar = element.querySelector("[data-poll-progress]");
          if (bar && typeof state.progress === "number") { bar.value = state.progress; }
          if (state.done) { window.location.reload(); return; }
          window.setTimeout(tick, INTERVAL_MS);
        })
        .catch(function () {
          // A dropped request is retried more slowly; the page stays as it was.
          window.setTimeout(tick, INTERVAL_MS * 5);
        });
    }
    window.setTimeout(tick, INTERVAL_MS);
  }

  document.querySelectorAll("[data-poll-url]").forEach(poll);
})();
