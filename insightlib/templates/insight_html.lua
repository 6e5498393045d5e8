-- insight render, a report's web page made by Quarto's own Pandoc (after insight_safe.lua), without a
-- whole Quarto pass per page: the markup Quarto's filters would give the same source (tables styled
-- as Bootstrap's, images responsive with their alt text, headings anchored, callouts marked for the
-- shell's callout markup), so the page reads as the Quarto-rendered pages around it
-- (batch/quarto_shell.py puts it into the site's shell).

-- A chart drawn for a phone is shown on the web page: its wrapper (which the PDF drops) is unwrapped.
-- What is for the PDF only (the synthetic-data notice: the site's banner says it) is left out.
function Div(el)
  if el.classes:includes("pdf-only") then
    return {}
  end
  if el.classes:includes("content-visible") and el.attributes["when-format"] == "html" then
    return el.content
  end
  for _, class in ipairs(el.classes) do
    local kind = class:match("^callout%-(%a+)$")
    if kind then
      -- markers only insight writes here (after the safe filter); quarto_shell swaps in Quarto's callout
      local blocks = pandoc.List({ pandoc.RawBlock("html", "<!--insight-callout-" .. kind .. "-->") })
      blocks:extend(el.content)
      blocks:insert(pandoc.RawBlock("html", "<!--/insight-callout-->"))
      return blocks
    end
  end
  return nil
end

-- Tables as Quarto styles them: Bootstrap's classes (a pandas table the smaller, striped kind), rows
-- marked header / odd / even as Quarto's writer marks them.
local function mark_rows(rows, first)
  for i, row in ipairs(rows) do
    row.attr.classes = pandoc.List({ first or ((i % 2 == 1) and "odd" or "even") })
  end
end

function Table(el)
  if el.classes:includes("dataframe") then
    el.classes = pandoc.List({ "dataframe", "caption-top", "table", "table-sm", "table-striped", "small" })
  else
    el.classes = pandoc.List({ "caption-top", "table" })
  end
  if #el.head.rows > 0 then
    mark_rows({ el.head.rows[1] }, "header")
    local rest = {}
    for i = 2, #el.head.rows do
      table.insert(rest, el.head.rows[i])
    end
    for i, row in ipairs(rest) do
      row.attr.classes = pandoc.List({ (i % 2 == 1) and "even" or "odd" })
    end
  end
  for _, body in ipairs(el.bodies) do
    mark_rows(body.body)
  end
  return el
end

-- insight's own raw HTML table (a pandas table with merged cells; the safe filter kept it) is read into
-- a table, as Quarto reads raw HTML tables, so it is styled as the others.
function RawBlock(el)
  if el.format == "html" and el.text:find("<table") then
    return pandoc.read(el.text, "html").blocks:walk({ Table = Table })
  end
  return nil
end

function Image(el)
  local alt = el.attributes["fig-alt"]
  if alt then
    el.attributes["fig-alt"] = nil
    el.caption = { pandoc.Str(alt) }
  end
  el.classes:insert("img-fluid")
  return el
end

function Header(el)
  el.classes:insert("anchored")
  el.attributes["anchor-id"] = el.identifier
  return el
end
