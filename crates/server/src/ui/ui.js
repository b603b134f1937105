// Spindle's web page, the little JavaScript it has: a run page that is still running follows
// its server-sent events (log lines appended as text, never as markup; step statuses), and
// reloads when the run ends. A sign-in page submits its form at once. Without JavaScript the
// pages still show everything as it was when loaded.
"use strict";
document.addEventListener("DOMContentLoaded", function () {
  var signIn = document.getElementById("sign-in");
  if (signIn) { signIn.submit(); return; }
  var run = document.getElementById("run");
  if (!run || !run.dataset.events || !window.EventSource) { return; }
  var es = new EventSource(run.dataset.events);
  es.addEventListener("line", function (e) {
    var d = JSON.parse(e.data);
    var pre = document.getElementById("log-" + d.job + "-" + d.step);
    if (!pre) { return; }
    pre.appendChild(document.createTextNode(d.text));
    var details = pre.parentElement;
    if (details && details.tagName === "DETAILS") { details.open = true; }
  });
  es.addEventListener("step", function (e) {
    var d = JSON.parse(e.data);
    var badge = document.querySelector('[data-step="' + d.job + ":" + d.step + '"]');
    if (!badge) { return; }
    badge.className = "status s-" + d.status;
    badge.textContent = d.status;
  });
  es.addEventListener("end", function () {
    es.close();
    window.location.reload();
  });
});
