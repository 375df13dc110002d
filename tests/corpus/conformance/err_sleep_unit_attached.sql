\sleep 2hours
