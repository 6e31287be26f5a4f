-- wrk hook for the miss benchmark: every request asks for a URL never asked
-- before, GET /api/catalog?miss=<window><thread, 3 digits><n, 9 digits>,
-- n counting up from 1 in each thread. The runner passes the window id
-- (`wrk ... -- <window>`) and gives every window of the run its own, so no
-- URL repeats across warm-up, measured window and checks: nothing is a hit.
-- (harness.mjs distinctPath() builds the same URLs; appended to wrk-report.lua.)
local threads = 0

function setup(thread)
  thread:set("thread_index", threads)
  threads = threads + 1
end

local prefix
local n = 0

function init(args)
  local window = tonumber(args[1])
  if window == nil then error("wrk-distinct.lua needs the window id: wrk ... -- <window>") end
  prefix = string.format("/api/catalog?miss=%d%03d", window, thread_index or 0)
end

function request()
  n = n + 1
  return wrk.format("GET", prefix .. string.format("%09d", n))
end
