\sleep 2 hours
