// The console's live parts: while a run is active, fetch the dashboard's JSON every 2 s and
// swap the running / waiting / failures / summary panels; stop when nothing is active. Elapsed
// times tick every second from the server's clock (the offset is taken at each fetch).
(function () {
  "use strict";
  const POLL_MS = 2000;
  const root = document.getElementById("console");
  if (!root) return;
  const liveUrl = root.dataset.liveUrl;
  const status = document.getElementById("console-live");
  let clockOffset = Date.parse(root.dataset.serverTime) - Date.now();
  let timer = null;
  let failuresInARow = 0;

  function words(seconds) {
    seconds = Math.max(Math.floor(seconds), 0);
    const pad = (n) => String(n).padStart(2, "0");
    if (seconds < 60) return seconds + " s";
    let minutes = Math.floor(seconds / 60);
    seconds %= 60;
    if (minutes < 60) return minutes + " min " + pad(seconds) + " s";
    let hours = Math.floor(minutes / 60);
    minutes %= 60;
    if (hours < 48) return hours + " h " + pad(minutes) + " min";
    return Math.floor(hours / 24) + " d " + (hours % 24) + " h";
  }

  function tick() {
    const now = Date.now() + clockOffset;
    for (const el of root.querySelectorAll("time.elapsed[data-since]")) {
      const since = Date.parse(el.dataset.since);
      if (!Number.isNaN(since)) el.textContent = words((now - since) / 1000);
    }
  }

  function showState(active) {
    status.classList.toggle("is-live", active);
    status.textContent = active ? "Updating live" : "Nothing is active: this page is not updating. ";
    if (!active) {
      const refresh = document.createElement("a");
      refresh.href = "";
      refresh.textContent = "Refresh";
      status.appendChild(refresh);
    }
  }

  async function poll() {
    timer = null;
    let data;
    try {
      const response = await fetch(liveUrl, { headers: { Accept: "application/json" }, credentials: "same-origin" });
      if (!response.ok) throw new Error("HTTP " + response.status);
      data = await response.json();
      failuresInARow = 0;
    } catch (error) {
      failuresInARow += 1;
      status.textContent = "Could not update (" + error.message + "); trying again…";
      timer = setTimeout(poll, Math.min(POLL_MS * 2 ** failuresInARow, 30000));
      return;
    }
    clockOffset = Date.parse(data.server_time) - Date.now();
    for (const [part, html] of Object.entries(data.parts)) {
      const el = root.querySelector('[data-live-part="' + part + '"]');
      if (el) el.innerHTML = html;
    }
    root.dataset.active = data.active ? "1" : "0";
    tick();
    showState(data.active);
    if (data.active) timer = setTimeout(poll, POLL_MS);
  }

  // A rerun asks first: it starts a real run.
  root.addEventListener("submit", (event) => {
    const form = event.target.closest("form[data-confirm]");
    if (form && !window.confirm(form.dataset.confirm)) event.preventDefault();
  });

  setInterval(tick, 1000);
  if (root.dataset.active === "1") {
    showState(true);
    timer = setTimeout(poll, POLL_MS);
  }
})();
