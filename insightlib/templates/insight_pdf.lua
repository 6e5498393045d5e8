-- insight render, the PDF of a report (Pandoc to Typst, after insight_safe.lua): what the web page
-- shows only on screen (a chart drawn for a phone) is left out, a callout (the synthetic-data notice, a
-- failed step) is a box, and every other div is its content.
local BOX = '#block(width: 100%, inset: 8pt, radius: 2pt, fill: rgb("#f3f2f1"), stroke: (left: 3pt + rgb("#12436d")))['

function Div(el)
  if el.classes:includes("content-visible") and el.attributes["when-format"] == "html" then
    return {}
  end
  for _, class in ipairs(el.classes) do
    if class:match("^callout") then
      local blocks = pandoc.List({ pandoc.RawBlock("typst", BOX) })
      blocks:extend(el.content)
      blocks:insert(pandoc.RawBlock("typst", "]"))
      return blocks
    end
  end
  return el.content
end
