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

function Table(el)
  el.classes = pandoc.List({ "caption-top", "table" })
  return el
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
