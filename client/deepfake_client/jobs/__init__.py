"""Jobs for long work (issue 20): a video, an archive of images or server-side paths, judged in the
background on huey (SqliteHuey embedded in the gateway by default, RedisHuey with separate workers),
with the jobs and their per-item results in the record database.

`models` the tables, `store.JobStore` their reads and writes, `inputs` what a job may take (zip
archives, paths under a root), `runner` scores a chunk of a job through the SDK, `queue` the huey
side, `webhook` the signed completion call, `api` the gateway's /api/jobs, `cli` `deepfake job`.
"""
