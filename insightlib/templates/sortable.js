/* Sort a table.sortable by clicking a column heading. Without JavaScript the table is still complete. */
(function () {
  var tables = document.querySelectorAll("table.sortable");
  Array.prototype.forEach.call(tables, function (table) {
    if (table.getAttribute("data-sort-ready")) { return; }
    table.setAttribute("data-sort-ready", "1");
    var headers = table.tHead.rows[0].cells;
    Array.prototype.forEach.call(headers, function (th, col) {
      var button = document.createElement("button");
      button.type = "button";
      button.className = "sort";
      button.textContent = th.textContent;
      th.textContent = "";
      th.appendChild(button);
      th.setAttribute("aria-sort", "none");
      button.addEventListener("click", function () {
        var ascending = th.getAttribute("aria-sort") !== "ascending";
        Array.prototype.forEach.call(headers, function (h) { h.setAttribute("aria-sort", "none"); });
        th.setAttribute("aria-sort", ascending ? "ascending" : "descending");
        var body = table.tBodies[0];
        var rows = Array.prototype.slice.call(body.rows);
        rows.sort(function (a, b) {
          var x = a.cells[col], y = b.cells[col];
          var xs = x.getAttribute("data-sort"), ys = y.getAttribute("data-sort");
          if (xs !== null && ys !== null) {
            if (xs === "" || ys === "") { return (xs === "") - (ys === ""); } /* symbols last */
            return ascending ? xs - ys : ys - xs;
          }
          var cmp = x.textContent.localeCompare(y.textContent);
          return ascending ? cmp : -cmp;
        });
        rows.forEach(function (r) { body.appendChild(r); });
      });
    });
  });
})();
