
mnist-onestep2req-1*!
seedINT64*€€€€€€€€€*%
labelINT64"
binary_data2
sample
binary_data"
priority"
timeout
ÿÿÿÿÿÿÿÿ