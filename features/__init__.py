"""Pure media and text feature functions: decode a file once with ffmpeg, then compute visual,
audio (MFCC) and text features from arrays. No Spark, no tables; jobs/ wraps these.

Modules: decode (safe resolve, probe, one bounded ffmpeg decode), visual, audio, text, extract.
"""
