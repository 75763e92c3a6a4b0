// The SOC console's live alarm list: Server-Sent Events, keyboard navigation,
// acknowledgements by fetch, browser notifications and a beep for new alarms.
// Rows arrive rendered (and escaped) by the server; this file never builds markup from alarm text.
(function () {
  "use strict";

  var tbody = document.getElementById("alarms");
  if (!tbody) { return; }
  var csrf = document.querySelector('meta[name="csrf-token"]').content;
  var descending = tbody.dataset.desc === "true";
  var streamUrl = tbody.dataset.stream;
  var stale = document.getElementById("stale");
  var liveText = document.getElementById("live-text");
  var liveState = document.querySelector(".live-state");
  var empty = document.getElementById("empty");
  var total = document.getElementById("total");
  var STALE_AFTER_MS = 2500;
  var MAX_ROWS = 200;  // the server's page of rows (vaultwatch.web.console.PAGE_SIZE)

  // -- live feed -------------------------------------------------------------------------------

  var source = null;
  var lastMark = new URL(streamUrl, location.href).searchParams.get("since") || "";
  var staleTimer = null;
  var reopenTimer = null;

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
      // A planned reconnect takes a moment: only a real outage shows the banner.
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

  function connect() {
    var url = new URL(streamUrl, location.href);
    if (lastMark) { url.searchParams.set("since", lastMark); }
    source = new EventSource(url.toString());
    source.onopen = function () { setLive(true); };
    source.onerror = function () {
      setLive(false);
      if (source.readyState === EventSource.CLOSED) {
        // The browser gave up (an HTTP error): signed out, or the server is restarting.
        clearTimeout(reopenTimer);
        reopenTimer = setTimeout(checkSession, 2000);
      }
    };
    source.addEventListener("alarms", function (event) {
      setLive(true);
      if (event.lastEventId) { lastMark = event.lastEventId; }
      receive("changes", JSON.parse(event.data));
    });
    source.addEventListener("page", function (event) {
      setLive(true);
      if (event.lastEventId) { lastMark = event.lastEventId; }
      receive("page", JSON.parse(event.data));
    });
    source.addEventListener("reload", function () { location.reload(); });
  }

  function checkSession() {
    fetch("/console/ping", { redirect: "manual", credentials: "same-origin" })
      .then(function (response) {
        if (response.type === "opaqueredirect" || response.status === 401 || response.status === 403) {
          location.reload();  // the session has ended: the server sends us to the login form
        } else {
          connect();
        }
      })
      .catch(function () { reopenTimer = setTimeout(checkSession, 2000); });
  }

  function compareKeys(a, b) {
    for (var i = 0; i < a.length; i++) {
      if (a[i] < b[i]) { return -1; }
      if (a[i] > b[i]) { return 1; }
    }
    return 0;
  }

  function keyOf(row) {
    if (!row.vwKey) { row.vwKey = JSON.parse(row.dataset.key); }
    return row.vwKey;
  }

  // Rows are kept in order, so a binary search finds where a row goes.
  function position(rows, key) {
    var lo = 0;
    var hi = rows.length;
    while (lo < hi) {
      var mid = (lo + hi) >> 1;
      var order = compareKeys(key, keyOf(rows[mid]));
      if (descending ? order > 0 : order < 0) { hi = mid; } else { lo = mid + 1; }
    }
    return lo;
  }

  function parseRow(html) {
    var template = document.createElement("template");
    template.innerHTML = html.trim();
    return template.content.firstElementChild;
  }

  // Messages that arrive together (a storm) are applied in one go, after the browser has
  // answered what the operator did: the page stays responsive while alarms pour in.
  var pending = [];
  var flushTimer = null;

  function receive(kind, data) {
    pending.push({ kind: kind, data: data });
    if (flushTimer === null) { flushTimer = setTimeout(flush, 0); }
  }

  function flush() {
    flushTimer = null;
    var batch = pending;
    pending = [];
    // A fresh page (sent when more changed than the feed sends at once) replaces
    // everything before it.
    var start = 0;
    for (var i = batch.length - 1; i >= 0; i--) {
      if (batch[i].kind === "page") { start = i; break; }
    }
    if (batch[start].kind === "page") { replacePage(batch[start].data); start += 1; }
    var changes = {};
    var order = [];
    var counts = null;
    batch.slice(start).forEach(function (item) {
      item.data.changes.forEach(function (change) {
        if (!(change.id in changes)) { order.push(change.id); }
        changes[change.id] = change;  // the latest state of each alarm wins
      });
      counts = item.data.counts;
    });
    if (counts !== null) { apply(order.map(function (id) { return changes[id]; }), counts); }
  }

  function showCounts(counts) {
    Object.keys(counts).forEach(function (label) {
      var counter = document.querySelector('[data-count="' + label + '"]');
      if (counter) { counter.textContent = counts[label]; }
    });
  }

  function replacePage(data) {
    var selected = tbody.querySelector("tr.alarm.selected");
    var selectedId = selected ? selected.id : null;
    var had = {};
    Array.prototype.forEach.call(tbody.querySelectorAll("tr.alarm"), function (row) {
      had[row.id] = true;
      row.remove();
    });
    var fresh = [];
    data.rows.forEach(function (item) {
      var row = parseRow(item.html);
      tbody.appendChild(row);
      if (!had[row.id]) { fresh.push(item); }
      if (row.id === selectedId) { select(row, false); }
    });
    showCounts(data.counts);
    empty.hidden = data.rows.length > 0;
    total.textContent = String(data.total);
    if (fresh.length) { announce(fresh); }
  }

  // The page shows one page of rows (a storm must not grow it without bound): a new alarm
  // that sorts below the last shown row is counted, not drawn; "Next page" shows it.
  function apply(changes, counts) {
    var rows = Array.prototype.slice.call(tbody.querySelectorAll("tr.alarm"));
    var fresh = [];
    var delta = 0;
    changes.forEach(function (change) {
      var existing = document.getElementById("alarm-" + change.id);
      var wasSelected = false;
      if (existing) {
        wasSelected = existing.classList.contains("selected");
        rows.splice(rows.indexOf(existing), 1);
        if (!change.matches) {
          existing.remove();
          delta -= 1;
          return;
        }
      } else if (!change.matches) {
        return;
      } else {
        fresh.push(change);
        delta += 1;
      }
      var at = change.key ? position(rows, change.key) : rows.length;
      if (!existing && at >= MAX_ROWS) { return; }
      var row = parseRow(change.html);
      row.vwKey = change.key;
      if (existing) {
        existing.remove();
      } else {
        row.classList.add("fresh");
      }
      if (at < rows.length) { tbody.insertBefore(row, rows[at]); } else { tbody.appendChild(row); }
      rows.splice(at, 0, row);
      if (wasSelected) { select(row, false); }
    });
    for (var i = rows.length - 1; i >= MAX_ROWS; i--) {
      if (!rows[i].classList.contains("selected")) { rows[i].remove(); rows.splice(i, 1); }
    }
    showCounts(counts);
    empty.hidden = rows.length > 0;
    total.textContent = String(Math.max(rows.length, parseInt(total.textContent, 10) + delta));
    if (fresh.length) { announce(fresh); }
  }

  // -- notifications and sound ------------------------------------------------------------------

  var notifyButton = document.getElementById("notify");
  var soundBox = document.getElementById("sound");
  var audio = null;

  function notifyState() {
    var on = "Notification" in window && Notification.permission === "granted" &&
      localStorage.getItem("vw-notify") === "on";
    notifyButton.setAttribute("aria-pressed", on ? "true" : "false");
    notifyButton.textContent = on ? "Notifications on" : "Enable notifications";
    return on;
  }

  notifyButton.addEventListener("click", function () {
    if (!("Notification" in window)) {
      notifyButton.textContent = "Notifications unsupported";
      return;
    }
    if (notifyState()) {
      localStorage.setItem("vw-notify", "off");
      notifyState();
      return;
    }
    Notification.requestPermission().then(function (permission) {
      localStorage.setItem("vw-notify", permission === "granted" ? "on" : "off");
      notifyState();
    });
  });

  soundBox.checked = localStorage.getItem("vw-sound") === "on";
  soundBox.addEventListener("change", function () {
    localStorage.setItem("vw-sound", soundBox.checked ? "on" : "off");
    if (soundBox.checked) { beep(); }  // a user gesture lets the audio context start
  });

  function beep() {
    var Context = window.AudioContext || window.webkitAudioContext;
    if (!Context) { return; }
    audio = audio || new Context();
    if (audio.state === "suspended") { audio.resume(); }
    var osc = audio.createOscillator();
    var gain = audio.createGain();
    osc.type = "sine";
    osc.frequency.value = 880;
    gain.gain.setValueAtTime(0.0001, audio.currentTime);
    gain.gain.exponentialRampToValueAtTime(0.25, audio.currentTime + 0.02);
    gain.gain.exponentialRampToValueAtTime(0.0001, audio.currentTime + 0.35);
    osc.connect(gain).connect(audio.destination);
    osc.start();
    osc.stop(audio.currentTime + 0.4);
  }

  function announce(changes) {
    if (soundBox.checked) { beep(); }
    if (notifyState()) {
      var first = changes[0];
      var title = changes.length === 1
        ? first.severity.toUpperCase() + " on " + first.node
        : changes.length + " new alarms";
      new Notification(title, { body: first.summary, tag: "vaultwatch-alarm-" + first.id });
    }
  }
  notifyState();

  // -- actions ----------------------------------------------------------------------------------

  tbody.addEventListener("submit", function (event) {
    var form = event.target.closest("form.js-action");
    if (!form) { return; }
    event.preventDefault();
    act(form);
  });

  function act(form) {
    var button = form.querySelector("button");
    button.disabled = true;
    fetch(form.action, {
      method: "POST",
      body: new FormData(form),
      headers: { "X-CSRF-Token": csrf, "Accept": "application/json" },
      credentials: "same-origin"
    }).then(function (response) {
      if (!response.ok) { throw new Error("HTTP " + response.status); }
      return response.json();
    }).then(function (doc) {
      var existing = document.getElementById("alarm-" + doc.id);
      var row = parseRow(doc.html);
      if (existing) {
        var wasSelected = existing.classList.contains("selected");
        existing.replaceWith(row);
        if (wasSelected) { select(row, true); }
      }
    }).catch(function (error) {
      button.disabled = false;
      button.textContent = "Retry";
      button.title = "The action failed: " + error.message;
    });
  }

  // -- keyboard navigation ----------------------------------------------------------------------

  function rows() { return Array.prototype.slice.call(tbody.querySelectorAll("tr.alarm")); }

  function select(row, focus) {
    rows().forEach(function (r) {
      r.classList.remove("selected");
      r.setAttribute("aria-selected", "false");
    });
    row.classList.add("selected");
    row.setAttribute("aria-selected", "true");
    if (focus) {
      row.focus({ preventScroll: true });
      row.scrollIntoView({ block: "nearest" });
    }
  }

  function move(step) {
    var all = rows();
    if (!all.length) { return; }
    var current = all.indexOf(tbody.querySelector("tr.alarm.selected"));
    var next = current < 0 ? 0 : Math.min(all.length - 1, Math.max(0, current + step));
    select(all[next], true);
  }

  document.addEventListener("keydown", function (event) {
    var tag = (event.target.tagName || "").toLowerCase();
    if (tag === "input" || tag === "textarea" || tag === "select" || event.altKey || event.ctrlKey || event.metaKey) {
      return;
    }
    var selected = tbody.querySelector("tr.alarm.selected");
    if (event.key === "j" || event.key === "ArrowDown") {
      move(1);
      event.preventDefault();
    } else if (event.key === "k" || event.key === "ArrowUp") {
      move(-1);
      event.preventDefault();
    } else if (event.key === "Enter" && selected && tag !== "button" && tag !== "a") {
      location.href = selected.dataset.href;
    } else if (event.key === "a" && selected) {
      var form = selected.querySelector("form.js-action");
      if (form && form.querySelector('[data-action="ack"]')) { act(form); }
    }
  });

  tbody.addEventListener("click", function (event) {
    var row = event.target.closest("tr.alarm");
    if (row && !event.target.closest("a, button, form")) { select(row, true); }
  });

  connect();
})();
