"""Scene cut: PySceneDetect shots, cut frame-exactly by ffmpeg into private clips (``stage``);
the clip table (``gather``); the clip summary and shot plot (``report``)."""
