"""Pure media and text feature functions: decode a file once with ffmpeg, then compute visual,
audio (MFCC) and text features from arrays. No Spark, no tables; jobs/ wraps these.

Modules: decode (safe resolve, probe, one bounded ffmpeg decode; DecodeLimits), ffmpeg_log (the
header and errors the decoding ffmpeg logs), visual, audio, text,
frame_embedding (an optional pretrained encoder's pooled output), extract (all of one decode).
"""
