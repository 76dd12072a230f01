package assembler

import (
	"encoding/binary"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/diskfs/go-diskfs/partition/gpt"
	"github.com/diskfs/go-diskfs/partition/mbr"
	"github.com/google/uuid"
)

// gptReserved is what GPT keeps at each end of the disk past the MBR: a
// header and 128 entries of 128 bytes, 1+32 sectors.
const gptReserved = 33

// layout fills in the partitions' default starts and sizes as sfdisk
// would (osbuild gives the table to sfdisk) and checks that they fit on
// the disk, in order and without overlapping.
func layout(name string, opts qemuOptions) ([]partition, error) {
	sectors := opts.Size / sectorSize
	first, last := int64(1), sectors-1 // dos: sector 0 is the MBR
	if opts.PTType == "gpt" {
		first, last = 1+gptReserved, sectors-1-gptReserved
	}
	parts := append([]partition(nil), opts.Partitions...)
	next := first
	for i := range parts {
		p := &parts[i]
		opt := fmt.Sprintf("partitions[%d]", i)
		if p.Start == 0 {
			p.Start = (next + 2047) / 2048 * 2048 // 1 MiB alignment
		}
		if p.Start < next {
			return nil, errOption(name, opt+".start", "sector %d is before sector %d, where the free space starts", p.Start, next)
		}
		if p.Size == 0 {
			end := last + 1
			if i+1 < len(parts) && parts[i+1].Start != 0 {
				end = parts[i+1].Start
			}
			p.Size = end - p.Start
			if p.Size <= 0 {
				return nil, errOption(name, opt+".start", "sector %d leaves no room for the partition", p.Start)
			}
		}
		if p.Start+p.Size-1 > last {
			return nil, errOption(name, opt+".size", "sectors %d to %d do not fit on a disk whose last usable sector is %d",
				p.Start, p.Start+p.Size-1, last)
		}
		next = p.Start + p.Size
	}
	return parts, nil
}

// writeTable lays out the partitions and writes their table to disk.
func writeTable(name string, disk *os.File, opts qemuOptions) ([]partition, error) {
	switch opts.PTType {
	case "dos", "gpt":
	default:
		return nil, errOption(name, "pttype", "%q is not one of dos, mbr, gpt", opts.PTType)
	}
	parts, err := layout(name, opts)
	if err != nil {
		return nil, err
	}
	if opts.PTType == "gpt" {
		err = writeGPT(name, disk, opts, parts)
	} else {
		err = writeMBR(name, disk, opts, parts)
	}
	if err != nil {
		return nil, err
	}
	return parts, nil
}

func writeGPT(name string, disk *os.File, opts qemuOptions, parts []partition) error {
	if err := checkUUID(name, "ptuuid", opts.PTUUID); err != nil {
		return err
	}
	diskGUID := uuid.MustParse(opts.PTUUID)
	table := &gpt.Table{LogicalSectorSize: sectorSize, PhysicalSectorSize: sectorSize, ProtectiveMBR: true, GUID: opts.PTUUID}
	for i, p := range parts {
		opt := fmt.Sprintf("partitions[%d]", i)
		typ := gpt.LinuxFilesystem
		if p.Type != "" {
			if err := checkUUID(name, opt+".type", p.Type); err != nil {
				return err
			}
			typ = gpt.Type(strings.ToUpper(p.Type))
		}
		guid := p.UUID
		if guid == "" {
			// go-diskfs would pick a random one; a GUID derived from the
			// disk's keeps the image reproducible and unique per disk.
			guid = uuid.NewSHA1(diskGUID, []byte("kiln partition "+strconv.Itoa(i+1))).String()
		} else if err := checkUUID(name, opt+".uuid", guid); err != nil {
			return err
		}
		if p.Bootable {
			return errOption(name, opt+".bootable", "applies to dos partition tables only")
		}
		table.Partitions = append(table.Partitions, &gpt.Partition{
			Index: i + 1, Start: uint64(p.Start), Size: uint64(p.Size * sectorSize),
			Type: typ, Name: p.Name, GUID: guid,
		})
	}
	if err := table.Write(disk, opts.Size); err != nil {
		return failure(name, fmt.Errorf("writing the GPT: %w", err))
	}
	return nil
}

func writeMBR(name string, disk *os.File, opts qemuOptions, parts []partition) error {
	id, err := strconv.ParseUint(strings.TrimPrefix(strings.ToLower(opts.PTUUID), "0x"), 16, 32)
	if err != nil {
		return errOption(name, "ptuuid", "%q is not a dos disk identifier (8 hex digits, as 0x14fc63d2)", opts.PTUUID)
	}
	if len(parts) > 4 {
		return errOption(name, "partitions", "%d partitions do not fit in a dos table, which kiln writes without extended partitions (at most 4)", len(parts))
	}
	if opts.Size/sectorSize > 1<<32 {
		return errOption(name, "size", "%d bytes is past what a dos table addresses (2 TiB); use pttype gpt", opts.Size)
	}
	table := &mbr.Table{LogicalSectorSize: sectorSize, PhysicalSectorSize: sectorSize}
	for i, p := range parts {
		opt := fmt.Sprintf("partitions[%d]", i)
		typ := mbr.Linux
		if p.Type != "" {
			t, err := strconv.ParseUint(strings.TrimPrefix(strings.ToLower(p.Type), "0x"), 16, 8)
			if err != nil || t == 0 {
				return errOption(name, opt+".type", "%q is not a dos partition type (a hex byte, as 83 or 0xef)", p.Type)
			}
			typ = mbr.Type(t)
		}
		if p.UUID != "" {
			return errOption(name, opt+".uuid", "applies to gpt partition tables only")
		}
		if p.Name != "" {
			return errOption(name, opt+".name", "applies to gpt partition tables only")
		}
		table.Partitions = append(table.Partitions, &mbr.Partition{
			Index: i + 1, Bootable: p.Bootable, Type: typ, Start: uint32(p.Start), Size: uint32(p.Size),
		})
	}
	if err := table.Write(disk, opts.Size); err != nil {
		return failure(name, fmt.Errorf("writing the dos table: %w", err))
	}
	// go-diskfs writes the entries and the signature, not the disk
	// identifier before them (offset 440, little-endian), which Linux shows
	// as PTUUID and a dos disk's PARTUUIDs are made of.
	var sig [4]byte
	binary.LittleEndian.PutUint32(sig[:], uint32(id))
	_, err = disk.WriteAt(sig[:], 440)
	return err
}
