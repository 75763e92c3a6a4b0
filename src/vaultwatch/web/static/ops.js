// Operations in progress: the running jobs' rows arrive rendered (and escaped) by the server over
// Server-Sent Events; this file only puts them in place, and says when the feed is down.
(function () {
  "use strict";

  var tbody = document.getElementById("jobs");
  if (!tbody) { return; }
  var stale = document.getElementById("stale");
  var liveText = document.getElementById("live-text");
  var liveState = document.querySelector(".live-state");
  var empty = document.getElementById("ops-empty");
  var count = document.getElementById("ops-count");
  var stalled = document.getElementById("ops-stalled");
  var stalledLine = document.getElementById("ops-stalled-line");
  var STALE_AFTER_MS = 2500;
  var staleTimer = null;
  var source = null;

  function setLive(live) {
    if (live) {
      clearTimeout(staleTimer);
      staleTimer = null;
      stale.hidden = true;
      liveState.classList.add("live");
      liveState.classList.remove("stale-state");
      liveText.textContent = "Live";
      document.body.dataset.live = "true";
    } else if (staleTimer === null && document.body.dataset.live !== "false") {
      staleTimer = setTimeout(function () {
        stale.hidden = false;
        liveState.classList.remove("live");
        liveState.classList.add("stale-state");
        liveText.textContent = "Reconnecting…";
        document.body.dataset.live = "false";
        staleTimer = null;
      }, STALE_AFTER_MS);
    }
  }

  function parseRow(html) {
    var template = document.createElement("template");
    template.innerHTML = html.trim();
    return template.content.firstElementChild;
  }

  function apply(data) {
    var wanted = {};
    var previous = null;
    data.rows.forEach(function (item) {
      wanted["job-" + item.id] = true;
      var row = parseRow(item.html);
      var existing = document.getElementById("job-" + item.id);
      if (existing) {
        existing.replaceWith(row);
      } else {
        row.classList.add("fresh");
      }
      // Keep the server's order: each row goes right after the one before it.
      if (previous) {
        previous.after(row);
      } else {
        tbody.prepend(row);
      }
      previous = row;
    });
    Array.prototype.slice.call(tbody.querySelectorAll("tr.job")).forEach(function (row) {
      if (!wanted[row.id]) { row.remove(); }
    });
    count.textContent = String(data.count);
    stalled.textContent = String(data.stalled);
    stalledLine.hidden = data.stalled === 0;
    empty.hidden = data.count > 0;
  }

  function checkSession() {
    fetch("/console/ping", { redirect: "manual", credentials: "same-origin" })
      .then(function (response) {
        if (response.type === "opaqueredirect" || response.status === 401 || response.status === 403) {
          location.reload();
        } else {
          connect();
        }
      })
      .catch(function () { setTimeout(checkSession, 2000); });
  }

  function connect() {
    source = new EventSource(tbody.dataset.stream);
    source.onopen = function () { setLive(true); };
    source.onerror = function () {
      setLive(false);
      if (source.readyState === EventSource.CLOSED) { setTimeout(checkSession, 2000); }
    };
    source.addEventListener("jobs", function (event) {
      setLive(true);
      apply(JSON.parse(event.data));
    });
  }

  connect();
})();
