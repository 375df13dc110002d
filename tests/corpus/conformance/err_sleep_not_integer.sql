\sleep ms
