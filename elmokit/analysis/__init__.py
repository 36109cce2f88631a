"""Looking inside an LM: every unit over a text (`elmokit cells`, its HTML page) and gradient flow
(`elmokit gradients`)."""
