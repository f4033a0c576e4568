// Slips (node/web/slips.py): the Print button, and ?print=1 (one click, or [desk] print_slips = auto) opens the
// print dialog at once and then returns to the desk page the slip came from.  A file, not inline: the CSP.
(function () {
  var slip = document.getElementById("slip");
  var button = document.getElementById("print-slip");
  if (!slip) { return; }
  if (button) { button.addEventListener("click", function () { window.print(); }); }
  if (slip.getAttribute("data-print-now") === "yes") {
    window.addEventListener("afterprint", function () { window.location.assign(slip.getAttribute("data-back")); });
    window.print();
  }
})();
