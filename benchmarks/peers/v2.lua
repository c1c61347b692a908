-- wrk script: an Open Inference Protocol (v2) body, one Iris row as the tensor
-- "features" [1, 4]. The summary line is benchmarks/post.lua's, loaded from beside this file.
local here = debug.getinfo(1, "S").source:sub(2):match("(.*/)") or "./"
dofile(here .. "../post.lua")
wrk.body = '{"inputs": [{"name": "features", "shape": [1, 4], "datatype": "FP32", '
  .. '"data": [5.1, 3.5, 1.4, 0.2]}]}'
