\frobnicate 3
