//go:build !race

package jit

const raceDetector = false
