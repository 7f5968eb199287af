/* Curation console: live job progress, confirmations, tenant switch, schedule form, copy. No dependencies. */
(function () {
  "use strict";

  function text(el, value) { if (el) el.textContent = value; }

  function formatSeconds(value) {
    if (value === null || value === undefined) return "–";
    if (value < 60) return value.toFixed(1) + " s";
    var total = Math.round(value), h = Math.floor(total / 3600), m = Math.floor((total % 3600) / 60), s = total % 60;
    return h ? h + " h " + m + " min " + s + " s" : m + " min " + s + " s";
  }

  function formatTime(iso) {
    if (!iso) return "–";
    var d = new Date(iso);
    function p(n) { return String(n).padStart(2, "0"); }
    return d.getUTCFullYear() + "-" + p(d.getUTCMonth() + 1) + "-" + p(d.getUTCDate()) + " " + p(d.getUTCHours()) + ":" +
      p(d.getUTCMinutes()) + ":" + p(d.getUTCSeconds()) + " UTC";
  }

  function renderJob(root, job) {
    var percent = Math.round((job.progress.fraction || 0) * 100);
    var field = function (name) { return root.querySelector('[data-field="' + name + '"]'); };
    var badge = root.querySelector("[data-status]");
    if (badge) { badge.textContent = job.status; badge.className = "badge status-" + job.status; }
    text(field("stage"), job.stage);
    text(field("done"), job.progress.shards_done);
    text(field("total"), job.progress.shards_total);
    var bar = field("bar");
    bar.setAttribute("aria-valuenow", percent);
    var fill = bar.querySelector(".progress-fill");
    fill.setAttribute("width", percent + "%");
    fill.setAttribute("class", "progress-fill status-" + job.status);
    text(field("percent"), percent + "%");
    var error = field("error");
    error.hidden = !job.error; text(error, job.error || "");
    (job.units || []).forEach(function (stage) {
      var row = root.querySelector('tr[data-stage="' + stage.name + '"]');
      if (!row) return;
      row.className = "stage-" + stage.state;
      text(row.querySelector("[data-stage-done]"), stage.units_done);
      text(row.querySelector("[data-stage-seconds]"), formatSeconds(stage.seconds));
      var cells = row.querySelectorAll(".unit-grid .cell");
      if (stage.grid) stage.grid.forEach(function (done, i) { if (cells[i]) cells[i].classList.toggle("done", done); });
    });
    text(document.querySelector('[data-field="started_at"]'), formatTime(job.timings.started_at));
    text(document.querySelector('[data-field="finished_at"]'), formatTime(job.timings.finished_at));
    text(document.querySelector('[data-field="elapsed"]'), formatSeconds(job.timings.elapsed_seconds));
    text(document.querySelector('[data-field="eta"]'), formatSeconds(job.timings.eta_seconds));
    var resultCard = document.querySelector('[data-field="result-card"]');
    if (resultCard && job.result !== null && job.result !== undefined) {
      resultCard.hidden = false;
      text(resultCard.querySelector('[data-field="result"]'), JSON.stringify(job.result, null, 2));
    }
    document.querySelectorAll('[data-show-when="active"]').forEach(function (el) { el.hidden = !job.active; });
    document.querySelectorAll('[data-show-when="retryable"]').forEach(function (el) {
      el.hidden = !(job.status === "failed" || job.status === "cancelled");
    });
    root.setAttribute("data-status", job.status);
    text(field("live"), job.active ? "updating live" : "");
  }

  function followJob(root) {
    var url = root.getAttribute("data-progress-url");
    var delay = 1000;
    function poll() {
      fetch(url, { headers: { "Accept": "application/json" }, credentials: "same-origin", cache: "no-store" })
        .then(function (response) { if (!response.ok) throw new Error(response.status); return response.json(); })
        .then(function (job) {
          renderJob(root, job);
          delay = 1000;
          if (job.active) setTimeout(poll, delay);
        })
        .catch(function () { delay = Math.min(delay * 2, 15000); setTimeout(poll, delay); });
    }
    if (root.getAttribute("data-active") === "true") setTimeout(poll, 500);
  }

  function timingToggle(form) {
    var radios = form.querySelectorAll('input[name="timing"]');
    function apply() {
      var chosen = form.querySelector('input[name="timing"]:checked');
      form.querySelectorAll("[data-timing]").forEach(function (el) {
        el.hidden = chosen && el.getAttribute("data-timing") !== chosen.value;
      });
    }
    radios.forEach(function (r) { r.addEventListener("change", apply); });
    apply();
  }

  document.addEventListener("DOMContentLoaded", function () {
    var job = document.getElementById("job-progress");
    if (job) followJob(job);
    document.querySelectorAll("form[data-confirm]").forEach(function (form) {
      form.addEventListener("submit", function (event) {
        if (!window.confirm(form.getAttribute("data-confirm"))) event.preventDefault();
      });
    });
    document.querySelectorAll("select[data-autosubmit]").forEach(function (select) {
      select.addEventListener("change", function () { select.form.submit(); });
    });
    document.querySelectorAll("form.schedule-form").forEach(timingToggle);
    document.querySelectorAll("[data-copy]").forEach(function (button) {
      button.addEventListener("click", function () {
        var target = document.querySelector(button.getAttribute("data-copy"));
        if (target && navigator.clipboard) navigator.clipboard.writeText(target.textContent.trim())
          .then(function () { button.textContent = "Copied"; });
      });
    });
  });
})();
