-- insight render: text from data and evaluation files is text (written into the reports folder
-- and named in _quarto.yml's filters). insightlib writes raw content only as fenced HTML tables;
-- any other raw inline or raw block (a `...`{=typst} or {=latex} that escaped the escaping) is
-- shown as the text it is, so it can neither run nor read a file into the PDF.
function RawInline(el)
  return pandoc.Str(el.text)
end

-- insight's own Typst settings (quarto.TYPST_HEADER, the PDF's header): kept, and only
-- that exact text.
local INSIGHT_TYPST = "#set par(justify: false)\n#show table.cell: set par(justify: false)\n#show table: set text(size: 9pt)"

local function trim(s)
  return (s:gsub("^%s+", ""):gsub("%s+$", ""))
end

function RawBlock(el)
  if el.format == "html" then
    return nil
  end
  if el.format == "typst" and trim(el.text) == INSIGHT_TYPST then
    return nil
  end
  return pandoc.Para({ pandoc.Str(el.text) })
end

-- A link goes only to the web, an e-mail address or a page of the site, never to a script.
local function safe_target(target)
  local scheme = target:match("^%s*([%a][%w+.-]*):")
  return scheme == nil or ({ http = true, https = true, mailto = true })[scheme:lower()] == true
end

function Link(el)
  if safe_target(el.target) then
    return nil
  end
  return el.content
end

function Image(el)
  if safe_target(el.src) then
    return nil
  end
  return pandoc.Str(el.src)
end
