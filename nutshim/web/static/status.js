// nutshim status page: refresh the cards in place every few seconds.
// No library, no external asset; the cards are rendered by the daemon
// (GET cards), so this only swaps them and says when it last succeeded.
"use strict";
(function () {
  var body = document.body;
  var every = (parseInt(body.getAttribute("data-refresh"), 10) || 5) * 1000;
  var cards = document.getElementById("cards");
  var updated = document.getElementById("updated");
  var refreshes = 0;

  function stamp(ok) {
    var now = new Date().toLocaleTimeString();
    updated.textContent = ok ? "updated " + now : "no answer from the daemon since " + now;
    updated.className = ok ? "updated" : "updated lost";
  }

  function refresh() {
    fetch("cards", { cache: "no-store" })
      .then(function (response) {
        if (!response.ok) { throw new Error("HTTP " + response.status); }
        return response.text();
      })
      .then(function (html) {
        cards.innerHTML = html;
        refreshes += 1;
        body.setAttribute("data-refreshes", String(refreshes));
        stamp(true);
      })
      .catch(function () { if (updated.className !== "updated lost") { stamp(false); } })
      .then(function () { window.setTimeout(refresh, every); });
  }

  stamp(true);
  window.setTimeout(refresh, every);
})();
