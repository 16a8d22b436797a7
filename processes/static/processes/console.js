/* The console's behaviour on the admin pages, without any library:
 * - elapsed times of running runs tick every second ([data-elapsed-since]);
 * - a page showing active runs polls a small JSON endpoint every 2 s ([data-live-url]) and, when
 *   what it shows changed, fetches itself again and swaps only the parts that can change; polling
 *   stops once nothing it shows is active;
 * - the process log follows like `tail -f`, by byte offset (#process-log[data-follow-url]);
 * - Cancel and Rerun ask for confirmation ([data-confirm], and the list's bulk actions);
 * - choosing a template file on the job form uploads it and fills in the template path.
 */
(function () {
  "use strict";

  var POLL_MS = 2000;
  var FOLLOW_MS = 1000;

  function formatDuration(seconds) {
    if (seconds < 0) seconds = 0;
    if (seconds < 60) return seconds.toFixed(1) + " s";
    var whole = Math.floor(seconds);
    var minutes = Math.floor(whole / 60);
    var hours = Math.floor(minutes / 60);
    minutes = minutes % 60;
    var secs = whole % 60;
    function pad(n) { return (n < 10 ? "0" : "") + n; }
    return hours ? hours + " h " + pad(minutes) + " min" : minutes + " min " + pad(secs) + " s";
  }

  // The server's clock, as the page saw it when rendered: ticking uses it, not the viewer's clock.
  var skewMs = 0;
  function readSkew(root) {
    var serverNow = root && root.getAttribute("data-server-now");
    if (serverNow) skewMs = Date.now() - Date.parse(serverNow);
  }

  function tick() {
    var nodes = document.querySelectorAll("[data-elapsed-since]");
    for (var i = 0; i < nodes.length; i++) {
      var since = Date.parse(nodes[i].getAttribute("data-elapsed-since"));
      if (!isNaN(since)) nodes[i].textContent = formatDuration((Date.now() - skewMs - since) / 1000);
    }
  }

  function keepOpenState(oldNode, freshNode) {
    // Collapsible sections (<details>) keep the state the viewer left them in.
    var oldDetails = oldNode.querySelectorAll("details");
    var freshDetails = freshNode.querySelectorAll("details");
    if (oldNode.tagName === "DETAILS") { freshNode.open = oldNode.open; }
    for (var i = 0; i < oldDetails.length && i < freshDetails.length; i++) freshDetails[i].open = oldDetails[i].open;
  }

  function swapParts(doc, selectors) {
    selectors.forEach(function (selector) {
      var current = document.querySelectorAll(selector);
      var fresh = doc.querySelectorAll(selector);
      if (current.length !== fresh.length) return;
      for (var i = 0; i < current.length; i++) {
        var node = document.importNode(fresh[i], true);
        keepOpenState(current[i], node);
        current[i].replaceWith(node);
      }
    });
  }

  function swapListRows(doc) {
    // Rows are matched by their process id; the checkbox cell is left alone so a selection survives.
    var rows = document.querySelectorAll("#result_list tbody tr");
    for (var i = 0; i < rows.length; i++) {
      var box = rows[i].querySelector("input.action-select");
      var key = box ? box.value : null;
      if (!key) continue;
      var freshBox = doc.querySelector('#result_list input.action-select[value="' + key + '"]');
      if (!freshBox) continue;
      var freshRow = freshBox.closest("tr");
      var cells = rows[i].querySelectorAll("td[class^='field-'], th[class^='field-']");
      for (var j = 0; j < cells.length; j++) {
        var freshCell = freshRow.querySelector("." + cells[j].className.split(" ")[0]);
        if (freshCell) cells[j].innerHTML = freshCell.innerHTML;
      }
    }
  }

  function refreshPage(root) {
    return fetch(window.location.href, { credentials: "same-origin", headers: { "X-Requested-With": "live" } })
      .then(function (response) { return response.text(); })
      .then(function (html) {
        var doc = new DOMParser().parseFromString(html, "text/html");
        var selectors = (root.getAttribute("data-live-swap") || "").split(",").filter(Boolean);
        swapParts(doc, selectors);
        if (root.hasAttribute("data-live-list")) swapListRows(doc);
        var freshRoot = doc.getElementById(root.id);
        if (freshRoot) readSkew(freshRoot);
        tick();
        // The page just shown is newer than the state that asked for it: a run that ended in
        // between shows "Succeeded" now, so the page must stop following now, not one beat later.
        var fresh = freshRoot && freshRoot.getAttribute("data-live-active");
        return fresh === "true" || fresh === "false" ? fresh === "true" : null;
      });
  }

  function liveUrl(root) {
    var url = root.getAttribute("data-live-url");
    if (!root.hasAttribute("data-live-list")) return url;
    var ids = [];
    var boxes = document.querySelectorAll("#result_list input.action-select");
    for (var i = 0; i < boxes.length; i++) ids.push(boxes[i].value);
    return ids.length ? url + "?ids=" + ids.slice(0, 200).join(",") : null;
  }

  function startLive(root) {
    var version = root.getAttribute("data-live-version");
    function poll() {
      var url = liveUrl(root);
      if (!url) return;
      fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
        .then(function (response) { return response.ok ? response.json() : null; })
        .then(function (state) {
          if (!state) return true;
          var changed = state.version !== version;
          version = state.version;
          root.setAttribute("data-live-active", state.active ? "true" : "false");
          return (changed ? refreshPage(root) : Promise.resolve(null)).then(function (shownActive) {
            var active = shownActive === null ? state.active : shownActive;
            root.setAttribute("data-live-active", active ? "true" : "false");
            return active;
          });
        })
        .catch(function () { return true; })  // a dropped request: try again on the next beat
        .then(function (active) {
          if (active) window.setTimeout(poll, POLL_MS);
          else document.dispatchEvent(new CustomEvent("jtb:live-stopped"));
        });
    }
    if (root.getAttribute("data-live-active") === "true") window.setTimeout(poll, POLL_MS);
  }

  function followLog(log) {
    var url = log.getAttribute("data-follow-url");
    var offset = parseInt(log.getAttribute("data-next-offset") || "0", 10);
    var root = document.getElementById("jtb-live");
    var finalReads = 0;
    function isActive() { return root && root.getAttribute("data-live-active") === "true"; }
    function read() {
      fetch(url + "?offset=" + offset, { credentials: "same-origin", headers: { Accept: "application/json" } })
        .then(function (response) { return response.ok ? response.json() : null; })
        .then(function (chunk) {
          if (chunk && chunk.text) {
            var follow = document.getElementById("jtb-log-follow");
            log.appendChild(document.createTextNode(chunk.text));
            if (!follow || follow.checked) log.scrollTop = log.scrollHeight;
          }
          if (chunk) offset = chunk.next_offset;
          if (chunk && chunk.more) return 0;
          if (chunk && !chunk.active && !isActive()) {
            // The run ended: read once more for lines written just before the end, then stop.
            finalReads += 1;
            return finalReads > 1 ? -1 : FOLLOW_MS;
          }
          return FOLLOW_MS;
        })
        .catch(function () { return FOLLOW_MS; })
        .then(function (delay) { if (delay >= 0) window.setTimeout(read, delay); });
    }
    if (isActive()) window.setTimeout(read, FOLLOW_MS);
  }

  function confirmations() {
    document.addEventListener("submit", function (event) {
      var form = event.target;
      var message = form.getAttribute("data-confirm");
      if (!message && form.id === "changelist-form") {
        var action = form.querySelector("select[name=action]");
        var chosen = action && action.value;
        var count = form.querySelectorAll("input.action-select:checked").length;
        if (chosen === "rerun") message = "Rerun the " + count + " selected process(es)?";
        if (chosen === "cancel") message = "Cancel the " + count + " selected process(es)? Running steps are stopped.";
      }
      if (message && !window.confirm(message)) event.preventDefault();
    }, true);
  }

  function templateUploads() {
    document.addEventListener("change", function (event) {
      var input = event.target;
      if (!input.classList || !input.classList.contains("jtb-template-file") || !input.files.length) return;
      var status = input.closest(".jtb-upload").querySelector(".jtb-upload-status");
      var token = document.querySelector("input[name=csrfmiddlewaretoken]");
      var body = new FormData();
      body.append("file", input.files[0]);
      status.textContent = "Uploading " + input.files[0].name + "…";
      fetch(input.getAttribute("data-upload-url"), {
        method: "POST", body: body, credentials: "same-origin",
        headers: { Accept: "application/json", "X-CSRFToken": token ? token.value : "" }
      })
        .then(function (response) { return response.json().then(function (answer) { return [response.ok, answer]; }); })
        .then(function (result) {
          if (result[0]) {
            document.getElementById(input.getAttribute("data-target")).value = result[1].template;
            status.textContent = "Uploaded as " + result[1].template + ". Save the job to use it.";
          } else {
            status.textContent = (result[1].errors || ["The upload failed."]).join(" ");
          }
        })
        .catch(function () { status.textContent = "The upload failed; try again."; });
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    var root = document.getElementById("jtb-live");
    readSkew(root);
    tick();
    window.setInterval(tick, 1000);
    if (root) startLive(root);
    var log = document.getElementById("process-log");
    if (log && log.hasAttribute("data-follow-url")) followLog(log);
    confirmations();
    templateUploads();
  });
})();
