# install rules (to be written)
