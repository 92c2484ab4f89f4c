
mnist-onestep (*0dHPX