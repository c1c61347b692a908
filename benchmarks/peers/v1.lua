-- wrk script: KServe's v1 body, one Iris row: {"instances": [[4 values]]}.
-- The summary line is benchmarks/post.lua's, loaded from beside this file.
local here = debug.getinfo(1, "S").source:sub(2):match("(.*/)") or "./"
dofile(here .. "../post.lua")
wrk.body = '{"instances": [[5.1, 3.5, 1.4, 0.2]]}'
