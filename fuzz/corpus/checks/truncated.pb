

model-n