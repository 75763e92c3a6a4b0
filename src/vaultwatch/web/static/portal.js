// The portal's server page: running jobs' progress, live over Server-Sent Events.
// Job cards arrive rendered (and escaped) by the server; this file never builds markup from job text.
(function () {
  "use strict";

  var box = document.getElementById("running-jobs");
  if (!box) { return; }
  var none = document.getElementById("no-running");
  var liveText = document.getElementById("live-text");
  var liveState = liveText ? liveText.parentNode : null;
  var source = null;
  var retryTimer = null;

  function setLive(live) {
    if (!liveState) { return; }
    liveState.classList.toggle("live", live);
    liveText.textContent = live ? "Live" : "Reconnecting…";
  }

  function place(job) {
    var current = document.getElementById("job-" + job.id);
    var fresh = document.createRange().createContextualFragment(job.html).firstElementChild;
    if (!fresh) { return; }
    if (current) {
      current.replaceWith(fresh);
    } else if (job.active) {
      box.appendChild(fresh);
    }
    if (!job.active) {
      fresh.classList.add("finished");
    }
    none.hidden = box.querySelector("article.job") !== null;
  }

  function connect() {
    // The jobs shown as running: if one ends while we reconnect, the server still says so.
    var url = new URL(box.dataset.stream, location.href);
    var watched = [];
    box.querySelectorAll("article.job:not(.finished)").forEach(function (card) { watched.push(card.dataset.job); });
    if (watched.length) { url.searchParams.set("watch", watched.join(",")); }
    source = new EventSource(url.toString());
    source.onopen = function () { setLive(true); };
    source.onerror = function () {
      setLive(false);
      if (source.readyState === EventSource.CLOSED) {
        clearTimeout(retryTimer);
        retryTimer = setTimeout(checkSession, 2000);
      }
    };
    source.addEventListener("jobs", function (event) {
      setLive(true);
      JSON.parse(event.data).jobs.forEach(place);
    });
  }

  function checkSession() {
    fetch("/portal/ping", { redirect: "manual", credentials: "same-origin" })
      .then(function (response) {
        if (response.type === "opaqueredirect" || response.status === 401 || response.status === 403) {
          location.reload();
        } else {
          connect();
        }
      })
      .catch(function () { retryTimer = setTimeout(checkSession, 2000); });
  }

  var requested = document.getElementById("restore-requested");
  if (requested) { requested.focus(); }
  connect();
})();
