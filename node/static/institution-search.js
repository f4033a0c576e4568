// Filter the institutions as the name is typed; without JavaScript all are listed.
// A file, not an inline script, so the Content-Security-Policy allows no inline script at all.
document.getElementById("institution-search").addEventListener("input", function (event) {
  var words = event.target.value.toLowerCase().trim();
  document.querySelectorAll("#institution-list li.institution").forEach(function (item) {
    item.hidden = item.dataset.search.indexOf(words) === -1;
  });
});
