"""What the template's tests and its benchmarks both need: render the template
and install the render (``render``), serve it and call it (``serve``), build its
container image (``image``). Neither owns it; both import it."""
