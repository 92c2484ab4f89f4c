
mnist-teacher€€€€€€€€€