// nbexec serve: keeps a page's job statuses live. Each element with data-events is the
// status of a running job; its Server-Sent Events stream moves the status on (and a job
// page's progress), and when a job changes state the page's <main> is fetched again (the server renders and escapes
// it; nothing here builds HTML) and swapped in, without a reload. Without EventSource,
// or when the stream fails, the page is polled. Without JavaScript, <noscript> refreshes.
(() => {
  "use strict";
  const LIVE = new Set(["SUBMITTED", "EXECUTING", "CANCELLING"]);
  const MAX_STREAMS = 4; // browsers allow 6 connections per host over HTTP/1.1
  let streams = [];
  let poller = 0;
  let swapping = false;

  const stopAll = () => {
    streams.forEach((s) => s.close());
    streams = [];
    clearInterval(poller);
    poller = 0;
  };

  const poll = () => {
    if (!poller) poller = setInterval(swap, 3000);
  };

  async function swap() {
    if (swapping) return;
    swapping = true;
    try {
      const r = await fetch(location.href, { cache: "no-store", credentials: "same-origin" });
      if (!r.ok) return;
      const doc = new DOMParser().parseFromString(await r.text(), "text/html");
      const fresh = doc.querySelector("main");
      const old = document.querySelector("main");
      if (!fresh || !old) return;
      stopAll();
      old.replaceWith(document.adoptNode(fresh));
      watch();
    } catch (e) {
      poll();
    } finally {
      swapping = false;
    }
  }

  function show(el, status) {
    if (el.textContent === status) return false;
    el.textContent = status;
    el.className = "status status-" + status.toLowerCase();
    return true;
  }

  function watch() {
    const main = document.querySelector("main");
    if (!main || !main.hasAttribute("data-live")) return;
    const live = [...main.querySelectorAll("[data-events]")].filter((el) => LIVE.has(el.textContent.trim()));
    if (live.length === 0 || live.length > MAX_STREAMS || !("EventSource" in window)) {
      poll();
      return;
    }
    for (const el of live) {
      const es = new EventSource(el.dataset.events);
      const on = (ev) => {
        let d;
        try { d = JSON.parse(ev.data); } catch (e) { return; }
        const status = d && (typeof d.status === "string" ? d.status : d.job && d.job.status);
        if (typeof status === "string" && show(el, status)) swap();
      };
      es.addEventListener("status", on);
      // A job's page shows which cell runs.
      es.addEventListener("cell", (ev) => {
        let d;
        try { d = JSON.parse(ev.data); } catch (e) { return; }
        const at = document.querySelector("main [data-field=progress]");
        if (at && d && Number.isInteger(d.number) && Number.isInteger(d.total)) {
          at.textContent = "cell " + d.number + " of " + d.total;
        }
      });
      es.onmessage = on;
      es.onerror = () => {
        if (es.readyState === EventSource.CLOSED) poll();
      };
      streams.push(es);
    }
  }

  watch();
})();
