// MTM console: live refresh of [data-refresh] blocks and small form helpers. Loaded from
// /static (the CSP forbids inline scripts); everything it inserts is HTML the console
// rendered and escaped.
"use strict";

(function () {
  const REFRESH_MS = 2000;

  function banner(text) {
    const b = document.getElementById("refresh-banner");
    if (!b) return;
    b.textContent = text;
    b.hidden = !text;
  }

  // Each [data-refresh] element's content is replaced every REFRESH_MS by the fragment
  // its URL renders, while the tab is visible. A 401 means the session ended: refreshing
  // stops and the banner says so.
  function liveRefresh(el) {
    const url = el.getAttribute("data-refresh");
    let stopped = false;
    async function tick() {
      if (stopped || document.hidden) return;
      try {
        const res = await fetch(url, {
          credentials: "same-origin",
          cache: "no-store",
          headers: { "X-Console-Fragment": "1" },
        });
        if (res.status === 401) {
          stopped = true;
          banner("Your session ended: reload the page to sign in again.");
          return;
        }
        if (!res.ok) {
          banner("Live refresh failed (" + res.status + "): " + (await res.text()));
          return;
        }
        el.innerHTML = await res.text();
        banner("");
        const status = document.getElementById("refresh-status");
        if (status) status.textContent = "live · updated " + new Date().toLocaleTimeString();
      } catch (e) {
        banner("Live refresh failed: the console is not answering.");
      }
    }
    setInterval(tick, REFRESH_MS);
  }

  // The delete form shows the name confirmation only for a delete without draining, and
  // keeps the button disabled until the name matches.
  function deleteForm(form) {
    const drain = form.querySelector("#delete-drain");
    const confirm = form.querySelector("#delete-confirm");
    const submit = form.querySelector("#delete-submit");
    const name = form.getAttribute("data-tenant-name");
    function update() {
      const draining = drain.checked;
      form.querySelectorAll(".confirm-only").forEach((e) => { e.hidden = draining; });
      form.querySelectorAll(".drain-only").forEach((e) => { e.hidden = !draining; });
      submit.textContent = draining ? "Drain, then delete" : "Delete now";
      submit.disabled = !draining && confirm.value !== name;
    }
    drain.addEventListener("change", update);
    confirm.addEventListener("input", update);
    update();
  }

  // Dead letters: select-all, a live count, and Redrive/Purge disabled again as soon as
  // the selection differs from the one the dry run counted.
  function deadLetters(form) {
    const picks = Array.from(form.querySelectorAll(".dl-pick"));
    const all = form.querySelector("#dl-all");
    const scope = form.querySelector("#dl-scope");
    const redrive = form.querySelector("#dl-redrive");
    const purge = form.querySelector("#dl-purge");
    const result = form.querySelector("#dryrun-result");
    function changed() {
      const n = picks.filter((p) => p.checked).length;
      if (scope) {
        const reason = scope.getAttribute("data-reason");
        scope.textContent = n > 0 ? n + " selected"
          : "No rows selected: all pending " + (reason ? reason + " " : "") + "dead letters";
      }
      if (redrive) redrive.disabled = true;
      if (purge) purge.disabled = true;
      if (result) result.textContent = "Selection changed: run the dry run again.";
    }
    picks.forEach((p) => p.addEventListener("change", changed));
    if (all) {
      all.addEventListener("change", () => {
        picks.forEach((p) => { p.checked = all.checked; });
        changed();
      });
    }
  }

  document.addEventListener("DOMContentLoaded", () => {
    document.querySelectorAll("[data-refresh]").forEach(liveRefresh);
    const del = document.getElementById("delete-form");
    if (del) deleteForm(del);
    const dl = document.getElementById("dl-form");
    if (dl) deadLetters(dl);
  });
})();
