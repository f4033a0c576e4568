// The checkout form's library chooser types ahead on any part of a name or code ("college" finds
// South College), for networks of many libraries; without JavaScript the filter stays hidden and the
// select alone (which types ahead on the start of a name) does the job.
// A file, not an inline script: the Content-Security-Policy allows no inline script at all.
(function () {
  var filter = document.getElementById("institution-filter");
  var select = document.getElementById("institution");
  var patron = document.getElementById("patron_id");
  if (!filter || !select) {
    return;
  }
  filter.hidden = false;
  filter.addEventListener("input", function () {
    var words = filter.value.toLowerCase().trim();
    var first = null;
    Array.prototype.forEach.call(select.options, function (option) {
      option.hidden = option.textContent.toLowerCase().indexOf(words) === -1;
      if (!option.hidden && first === null) {
        first = option;
      }
    });
    if (first && select.options[select.selectedIndex].hidden) {
      select.value = first.value;
    }
  });
  // Enter in the filter moves on to the patron id instead of sending a form without one.
  filter.addEventListener("keydown", function (event) {
    if (event.key === "Enter" && patron) {
      event.preventDefault();
      patron.focus();
    }
  });
})();
