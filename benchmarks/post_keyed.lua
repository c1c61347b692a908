-- wrk script: benchmarks/post.lua's body and summary line, with an API key
-- (the one benchmarks.run gives the "keys" row's service).
local here = debug.getinfo(1, "S").source:sub(2):match("(.*/)") or "./"
dofile(here .. "post.lua")
wrk.headers["Authorization"] = "Bearer benchmark-key-0123456789"
